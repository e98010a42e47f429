"""Sampler overhead: does reading CPU frequencies and thermal zones once a second (the
--sustained sampler) move the latency it samples? Target: medians <= 1 % apart.

The same engine runs device_scripts.runner.time_sustained in alternating rounds with the
real sampler (this host's /sys, or $HARNESS_SYSFS) and with a sampler that reads
nothing; the figure is the median of each round's invoke() samples, then the median over
rounds (the host is shared and noisy).

Usage: python benchmarks/sampler_overhead.py [--rounds 6] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from device_scripts import runner as R


class _Silent(R.Sysfs):
    """The sampler with nothing to read: what the run costs without it."""

    def sample(self) -> dict:
        return {"freq_khz": None, "temp_c": None}


def round_median(engine, seconds: float, sampler: type) -> tuple[float, int]:
    real = R.Sysfs
    R.Sysfs = sampler
    try:
        doc = R.time_sustained(engine, {"warmup": 20, "window_s": 1.0}, {"sustained_s": seconds},
                               None)  # fmt: skip
    finally:
        R.Sysfs = real
    return statistics.median(doc["invoke_us"]), len(doc["sustained"]["windows"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--model", type=Path, default=Path("build/bench/variants/fp32.tflite"))
    args = ap.parse_args()
    runtime = R.load_runtime()
    engine = R.make_engine(runtime, str(args.model), "xnnpack", 1)
    probe = R.Sysfs(os.environ.get("HARNESS_SYSFS") or "/sys")
    print(f"sampler reads {len(probe.freq_files)} cpufreq and {len(probe.temp_files)} "
          f"thermal files (missing: {probe.missing or 'none'})")  # fmt: skip
    got: dict[str, list[float]] = {"with": [], "without": []}
    for r in range(args.rounds):
        for name, sampler in (("with", R.Sysfs), ("without", _Silent))[:: 1 if r % 2 else -1]:
            median, windows = round_median(engine, args.seconds, sampler)
            got[name].append(median)
        print(f"round {r + 1}: with {got['with'][-1]:.1f} µs, without {got['without'][-1]:.1f} µs")
    w, wo = statistics.median(got["with"]), statistics.median(got["without"])
    print(f"\nmodel {args.model}, {args.rounds} rounds of {args.seconds:g} s ({windows} windows)")
    print(f"median invoke(): with sampler {w:.1f} µs, without {wo:.1f} µs")
    print(f"ratio with/without {w / wo:.4f}  (target within 1 %: 0.99-1.01)")


if __name__ == "__main__":
    main()
