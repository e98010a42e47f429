"""Overhead: wall time of a whole `harness run` sweep vs the on-device time of its cells.

The sweep: 4 variants x 2 delegates x 2 thread counts with --runs 200 on MobileNetV2
(random weights). On-device time per cell = init + first inference + warm-up runs +
timed runs (end-to-end samples, which include the invoke), summed from the stored raw
samples. The wall time is the whole CLI process: Python start, imports, planning,
runner start-up, store commits, table. Target ratio <= 1.15.

Usage: python benchmarks/overhead.py [--runs 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_model import build_variants

from harness.store.store import Store

VARIANTS = ("fp32", "fp16", "dynamic", "int8")


def one_sweep(variants_dir: Path, runs: int, warmup: int) -> tuple[float, float, int]:
    """(wall seconds, on-device seconds, cells) for one `harness run` subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/r.db"
        harness = Path(sys.executable).with_name("harness")
        t0 = time.perf_counter()
        subprocess.run(
            [
                str(harness),
                "run",
                str(variants_dir),
                "--delegates",
                "cpu,xnnpack",
                "--threads",
                "1,2",
                "--runs",
                str(runs),
                "--warmup",
                str(warmup),
                "--store",
                url,
            ],
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        store = Store(url)
        (run,) = store.list_runs(1)
        device_us = 0.0
        cells = store.cells(run.run_id)
        for c in cells:
            device_us += (c.init_us or 0) + (c.first_us or 0)
            device_us += sum(c.samples["warmup_us"]) + sum(c.samples["e2e_us"])
        return wall, device_us / 1e6, len(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("build/bench"))
    args = ap.parse_args()
    variants_dir = build_variants(args.work, VARIANTS)
    ratios = []
    for i in range(args.repeats):
        wall, device, n = one_sweep(variants_dir, args.runs, args.warmup)
        ratios.append(wall / device)
        print(
            f"sweep {i + 1}: {n} cells, wall {wall:.2f} s, on-device {device:.2f} s, "
            f"ratio {wall / device:.3f}"
        )
    print(f"median ratio wall/on-device: {statistics.median(ratios):.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
