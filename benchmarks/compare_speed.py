"""How long `compare_runs` takes: 200 cells x 1000 raw samples per side in 6 rounds
(median of 3).

Everything a compare does per cell is timed: the rounds' medians, Yuen's interval, the
pooled diagnostics (Mann-Whitney, Hodges-Lehmann) and the verdict. No store, no rendering.

Usage: python benchmarks/compare_speed.py [--cells 200] [--samples 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from harness.cells import Cell, CellRecord
from harness.measure.compare import CompareConfig, compare_runs
from harness.measure.stats import latency_stats


def make_run(cells: int, samples: int, seed: int) -> list[CellRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(cells):
        x = 1000 * rng.lognormal(0, 0.1, samples)
        x[rng.random(samples) < 0.02] *= 3  # heavy-tail spikes
        cell = Cell("dev", "model", f"v{i // 8}", ("cpu", "xnnpack")[i % 2], 1 + (i // 2) % 4)
        xs = [float(v) for v in x]
        sizes = [samples // 6 + (r < samples % 6) for r in range(6)]
        records.append(
            CellRecord(
                cell,
                "ok",
                latency=latency_stats(xs),
                samples={"invoke_us": xs},
                extra={"round_sizes": sizes},
            )
        )
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = make_run(args.cells, args.samples, 1)
    cand = make_run(args.cells, args.samples, 2)
    config = CompareConfig()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = compare_runs(base, cand, config)
        times.append(time.perf_counter() - t0)
    per_cell = statistics.median(times) / args.cells
    print(
        f"compare {args.cells} cells x {args.samples} samples/side in 6 rounds: "
        f"median {statistics.median(times):.3f} s "
        f"of {args.repeats} ({1e3 * per_cell:.2f} ms/cell); verdicts {result.counts()}"
    )


if __name__ == "__main__":
    main()
