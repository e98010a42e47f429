"""--together fidelity: harness's slowdown of two models served at once against a bare
two-thread loop doing the same in this process, printed side by side.

  harness - the real runner (`run_cells`, a subprocess): each model alone for a window,
            then both at once on a thread each for a window of the same length; its
            slowdown per model is the median over rounds of (p50 together / p50 alone).
  bare    - the same schedule in this process with two ai-edge-litert Interpreters and
            plain threads, no harness code on the timed path.

The models are benchmarks/bench_model.py's MobileNetV2 as fp32 and as int8 (invoke well
over 1 ms), on xnnpack. With 1 thread each on this 2-core host both models have a core
of their own (slowdown near 1, what the shared memory bus and the host's other work
cost); with --threads 2 they ask for 4 cores and must slow down. The two figures
should agree: the ratio harness/bare is the fidelity (target 0.95-1.05). Rounds
alternate harness and bare so the host's drift hits both.

Usage: python benchmarks/together.py [--rounds 5] [--window 1.5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
from bench_model import build_variants

from harness.convert.sources import file_sha256
from harness.devices.local import LocalDevice
from harness.runners.python_runner import JobCell, TimingConfig, run_cells


def harness_round(models: list[Path], threads: int, window: float) -> list[float]:
    """One round through the real runner: each model's p50 together / p50 alone."""
    cells = [
        JobCell(f"m{k}", m, file_sha256(m), "xnnpack", threads, group="g", together=True)
        for k, m in enumerate(models)
    ]
    timing = TimingConfig(runs=1, warmup=3, rounds=1, min_secs=window)
    out = {}
    for cell, raw in run_cells(LocalDevice(), cells, timing, None):
        assert raw["status"] == "ok", raw.get("reason")
        alone = statistics.median(raw["together"]["alone_us"])
        out[cell.id] = statistics.median(raw["invoke_us"]) / alone
    return [out[c.id] for c in cells]


def bare_round(models: list[Path], threads: int, window: float) -> list[float]:
    """The same schedule with bare Interpreters and threads in this process."""
    from ai_edge_litert.interpreter import Interpreter

    interps = []
    for m in models:
        it = Interpreter(model_path=str(m), num_threads=threads)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
        for _ in range(3):
            it.invoke()
        interps.append(it)

    def serve(it, until: int, out: list) -> None:
        while time.perf_counter_ns() < until:
            t0 = time.perf_counter_ns()
            it.invoke()
            out.append((time.perf_counter_ns() - t0) / 1e3)

    span = int(window * 1e9)
    alone = []
    for it in interps:
        xs: list[float] = []
        serve(it, time.perf_counter_ns() + span, xs)
        alone.append(statistics.median(xs))
    lanes: list[list[float]] = [[] for _ in interps]
    until = time.perf_counter_ns() + span
    workers = [
        threading.Thread(target=serve, args=(it, until, lane))
        for it, lane in zip(interps, lanes, strict=True)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [statistics.median(lane) / a for lane, a in zip(lanes, alone, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--window", type=float, default=1.5, help="seconds a window")
    ap.add_argument("--threads", type=int, default=1, help="threads of each model")
    ap.add_argument("--work", type=Path, default=Path("build/bench"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = build_variants(args.work, ("fp32", "int8"))
    models = [out / "fp32.tflite", out / "int8.tflite"]
    names = ["fp32", "int8"]
    h_rounds: list[list[float]] = []
    b_rounds: list[list[float]] = []
    for r in range(args.rounds):
        order = (harness_round, bare_round) if r % 2 == 0 else (bare_round, harness_round)
        for fn in order:
            got = fn(models, args.threads, args.window)
            (h_rounds if fn is harness_round else b_rounds).append(got)
        print(
            f"round {r + 1}: harness {' '.join(f'{x:.3f}' for x in h_rounds[-1])}  "
            f"bare {' '.join(f'{x:.3f}' for x in b_rounds[-1])}",
            flush=True,
        )
    print(f"\nslowdown together/alone, {args.threads} thread(s) each, {args.rounds} rounds")
    print(f"{'model':8} {'harness':>8} {'bare':>8} {'h/bare':>8} {'per-round h/bare':>17}")
    for k, name in enumerate(names):
        h = statistics.median(x[k] for x in h_rounds)
        b = statistics.median(x[k] for x in b_rounds)
        paired = statistics.median(hx[k] / bx[k] for hx, bx in zip(h_rounds, b_rounds))  # noqa: B905
        print(f"{name:8} {h:8.3f} {b:8.3f} {h / b:8.3f} {paired:17.3f}")


if __name__ == "__main__":
    main()
