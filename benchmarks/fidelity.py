"""Fidelity: does harness report the same steady-state median as other ways of timing?

For one .tflite (MobileNetV2, invoke >= 1 ms), the same threads and delegate, in one run:
  harness   - the on-device runner through `run_cells` (subprocess, LocalDevice)
  bare      - an in-process loop timing interpreter.invoke() with perf_counter_ns
  litert    - `python -m ai_edge_litert.tools.benchmark_litert_model` (CompiledModel, CPU)
Rounds alternate between the three so drift on this noisy machine spreads evenly; the
figures quoted are medians over rounds, and the ratios harness/bare and harness/litert.

Usage: python benchmarks/fidelity.py [--runs 200] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_model import build_variants

from harness.devices.local import LocalDevice
from harness.runners.python_runner import JobCell, TimingConfig, run_cells


def harness_median(model: Path, threads: int, runs: int, warmup: int) -> float:
    from harness.convert.sources import file_sha256

    cell = JobCell("c0", model, file_sha256(model), "xnnpack", threads)
    ((_, raw),) = run_cells(LocalDevice(), [cell], TimingConfig(runs=runs, warmup=warmup), None)
    return statistics.median(raw["invoke_us"])


def bare_median(model: Path, threads: int, runs: int, warmup: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), num_threads=threads)
    d = interp.get_input_details()[0]
    interp.resize_tensor_input(d["index"], [1, *d["shape_signature"][1:]])
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
    return statistics.median(samples)


def litert_median(model: Path, threads: int, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ai_edge_litert.tools.benchmark_litert_model",
                f"--model={model}",
                f"--num_runs={runs}",
                f"--warmup_runs={warmup}",
                f"--num_threads={threads}",
                f"--result_json={out}",
            ],
            check=True,
            capture_output=True,
        )
        doc = json.loads(out.read_text())
    return _median_us(doc)


def _median_us(doc: dict) -> float:
    return float(doc["latency"]["median_ms"]) * 1e3  # the tool reports 0.01 ms resolution


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("build/bench"))
    args = ap.parse_args()
    model = build_variants(args.work) / "fp32.tflite"
    timers = {"harness": harness_median, "bare": bare_median, "litert": litert_median}
    got: dict[str, list[float]] = {k: [] for k in timers}
    for r in range(args.rounds):
        for name, fn in timers.items():
            got[name].append(fn(model, args.threads, args.runs, args.warmup))
        print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.0f} µs" for k, v in got.items()))
    med = {k: statistics.median(v) for k, v in got.items()}
    print(
        f"\nmodel {model} ({model.stat().st_size / 1e6:.1f} MB), xnnpack, "
        f"{args.threads} thread(s), {args.runs} runs x {args.rounds} rounds"
    )
    print(f"{'timer':10} {'median µs':>10}")
    for k, v in med.items():
        print(f"{k:10} {v:10.0f}")
    print(f"ratio harness/bare   {med['harness'] / med['bare']:.3f}  (target 0.95-1.05)")
    print(f"ratio harness/litert {med['harness'] / med['litert']:.3f}  (target 0.95-1.05)")


if __name__ == "__main__":
    main()
