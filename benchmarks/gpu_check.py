"""GPU cells next to CPU ones, for a machine with a GPU (Vulkan loader + vendor ICD).

One sweep on `local` over MobileNetV2 (random weights) fp32 and fp16: cpu/xnnpack at 1
and 4 threads, gpu (fp16 precision) and gpu-f32. Prints per cell init (shader
compilation included; every round is a fresh process, so round 1 is the cold-cache
figure and later rounds show the cache effect), median, p90, drift vs the fp32 CPU
reference on random inputs, and whether the graph was fully accelerated. On a machine
without a GPU the gpu rows say `unsupported` with the runtime's reason.

Usage: python benchmarks/gpu_check.py [--runs 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_model import SIZE, build_variants

from harness.devices.local import LocalDevice
from harness.run import RunSpec, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("build/bench"))
    args = ap.parse_args()
    variants = build_variants(args.work, ("fp32", "fp16"))
    with tempfile.TemporaryDirectory() as tmp:
        eval_path = Path(tmp) / "eval.npz"
        rng = np.random.default_rng(1)
        np.savez(eval_path, x=rng.random((16, SIZE, SIZE, 3), dtype=np.float32))
        store = Store(f"sqlite:///{tmp}/gpu.db")
        spec = RunSpec(
            model=variants,
            delegates=("cpu", "xnnpack", "gpu", "gpu-f32"),
            threads=(1, 4),
            timing=TimingConfig(runs=args.runs, warmup=10, rounds=args.rounds),
            eval_path=eval_path,
        )
        run_id = run_sweep(spec, store, LocalDevice())
        records = store.cells(run_id)
    print(
        f"{'variant':8} {'delegate':8} {'thr':>3} {'init r1 ms':>10} {'init r2+ ms':>11} "
        f"{'median us':>10} {'p90 us':>9} {'drift max':>9} {'full':>5}"
    )
    for r in records:
        c = r.cell
        if r.status != "ok":
            print(f"{c.variant:8} {c.delegate:8} {c.threads:>3} {r.status}: {r.reason}")
            continue
        inits = r.samples.get("init_us_rounds") or [r.init_us]
        later = np.median(inits[1:]) / 1e3 if len(inits) > 1 else float("nan")
        drift = (r.drift or {}).get("max_abs")
        print(
            f"{c.variant:8} {c.delegate:8} {c.threads:>3} {inits[0] / 1e3:10.1f} {later:11.1f} "
            f"{r.latency.median:10.0f} {r.latency.p90:9.0f} "
            f"{drift if drift is not None else float('nan'):9.2e} "
            f"{str(r.extra.get('fully_accelerated', '-')):>5}"
        )


if __name__ == "__main__":
    main()
