"""Batch fidelity and concurrency scaling of the Python runner, printed in one run.

  batch fidelity - harness's per-sample latency at batch 8 (the on-device runner through
                   `run_cells`, a subprocess) against a bare in-process loop timing
                   invoke() on the same model resized to batch 8; target 0.97-1.03.
  concurrency    - aggregate throughput (samples/s over a fixed window, every instance
                   busy) with N = 1, 2, 4 interpreter instances of a 1-thread model;
                   N=2 / N=1 has a physical limit of 2x on this 2-core host (target
                   >= 1.8x), and N=4 must not collapse below N=2.

The model is benchmarks/bench_model.py's MobileNetV2 (invoke well over 1 ms). This host
is shared and noisy: each figure is the median over --rounds alternating rounds; each
ratio is printed twice, as the ratio of those medians and as the median of the per-round
ratios (the paired figure: both sides of a round share the host's state in that minute,
the rule harness's A/B compare uses).

Usage: python benchmarks/throughput.py [--rounds 3] [--runs 40] [--window 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from bench_model import build_variants

from harness.convert.sources import file_sha256
from harness.devices.local import LocalDevice
from harness.runners.python_runner import JobCell, TimingConfig, run_cells

BATCH = 8


def harness_per_sample(model: Path, runs: int, warmup: int) -> float:
    """Median invoke() latency at batch 8 through the real runner, over 8 samples."""
    cell = JobCell("b8", model, file_sha256(model), "xnnpack", 1, batch=BATCH)
    timing = TimingConfig(runs=runs, warmup=warmup, rounds=1)
    ((_, raw),) = run_cells(LocalDevice(), [cell], timing, None)
    assert raw["status"] == "ok", raw.get("reason")
    return statistics.median(raw["invoke_us"]) / BATCH


def bare_per_sample(model: Path, runs: int, warmup: int) -> float:
    """The same, timed by a bare loop in this process."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=1)
    d = interp.get_input_details()[0]
    interp.resize_tensor_input(d["index"], [BATCH, *d["shape_signature"][1:]])
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
    for _ in range(warmup):
        interp.invoke()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return statistics.median(samples) / BATCH


def load_throughput(model: Path, n: int, window_s: float) -> float:
    """Samples/s of n instances (1 thread each) serving at once for window_s."""
    cell = JobCell(f"c{n}", model, file_sha256(model), "xnnpack", 1, concurrency=n, load=True)
    timing = TimingConfig(runs=1, warmup=3, rounds=1, min_secs=window_s)
    ((_, raw),) = run_cells(LocalDevice(), [cell], timing, None)
    assert raw["status"] == "ok", raw.get("reason")
    return raw["load"]["samples"] / raw["load"]["window_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--window", type=float, default=2.0, help="seconds per load window")
    ap.add_argument("--work", type=Path, default=Path("build/bench"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model = build_variants(args.work) / "fp32.tflite"
    fid: dict[str, list[float]] = {"harness": [], "bare": []}
    rate: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for r in range(args.rounds):
        fid["harness"].append(harness_per_sample(model, args.runs, args.warmup))
        fid["bare"].append(bare_per_sample(model, args.runs, args.warmup))
        for n in rate:
            rate[n].append(load_throughput(model, n, args.window))
        print(
            f"round {r + 1}: per sample harness {fid['harness'][-1]:.0f} µs, "
            f"bare {fid['bare'][-1]:.0f} µs; samples/s "
            + ", ".join(f"N={n} {v[-1]:.1f}" for n, v in rate.items())
        )
    h, b = statistics.median(fid["harness"]), statistics.median(fid["bare"])
    t = {n: statistics.median(v) for n, v in rate.items()}
    print(f"\nmodel {model} ({model.stat().st_size / 1e6:.1f} MB), xnnpack, 1 thread")
    print(f"batch {BATCH} per-sample median: harness {h:.0f} µs, bare loop {b:.0f} µs")
    paired = statistics.median(x / y for x, y in zip(fid["harness"], fid["bare"], strict=True))
    print(f"ratio harness/bare {h / b:.3f}; median of per-round ratios {paired:.3f}  "
          "(target 0.97-1.03)")  # fmt: skip
    print(
        "aggregate throughput (median samples/s): "
        + ", ".join(f"N={n} {v:.1f}" for n, v in t.items())
    )
    per_round = {n: statistics.median(x / y for x, y in zip(rate[n], rate[1], strict=True))
                 for n in (2, 4)}  # fmt: skip
    print(f"ratio N=2/N=1 {t[2] / t[1]:.2f}x; median of per-round ratios {per_round[2]:.2f}x  "
          "(target >= 1.8x; limit 2x on 2 cores)")  # fmt: skip
    print(f"ratio N=4/N=1 {t[4] / t[1]:.2f}x; per round {per_round[4]:.2f}x  "
          f"(must not collapse below N=2: {t[4] / t[2]:.2f})")  # fmt: skip
    print(f"load average now: {os.getloadavg()[0]:.2f} (other work on this host)")


if __name__ == "__main__":
    main()
