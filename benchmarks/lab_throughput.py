"""Lab throughput on loopback: N `harness serve-device` boards, one lab night each.

For N in 1, 2, 4, 8 boards (each a `harness serve-device` subprocess, its own root),
one lab night of 2 models (digits and a same-size twin) x 4 variants x 2 delegates =
16 cells per board, through `harness.lab.job.run_lab` with the local executor (one
worker thread per board). Prints the wall time, the sum of on-device time (init +
first + warm-up + timed invokes of every cell, from the stored raw samples) and their
ratio, and how wall time scales from 1 board.

All boards share this host's cores, so scaling is bounded by them (on a 2-core
machine, 8 boards cannot run 8x in parallel): the figures show the harness's own
overhead and how it parallelises, not what 8 real boards would do.

An untimed 1-board night runs first, so that converting the models is not timed.

Usage: python benchmarks/lab_throughput.py [--boards 1,2,4,8] [--runs 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def boards(n: int, work: Path):
    work.mkdir(parents=True, exist_ok=True)
    props = work / "board.props"
    props.write_text(json.dumps({"ro.harness.python": sys.executable}))
    procs, serials = [], []
    try:
        for i in range(n):
            port = free_port()
            argv = [
                sys.executable,
                "-m",
                "harness.cli",
                "serve-device",
                "--no-auth",
                "--port",
                str(port),
                "--root",
                str(work / f"board{i}"),
                "--props",
                str(props),
            ]
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            serials.append(f"127.0.0.1:{port}")
        for s in serials:
            _wait(int(s.rsplit(":", 1)[1]))
        yield serials
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def _wait(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"serve-device on port {port} did not start")


def models(work: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "models"))
    import digits as recipe

    src = work / "digits"
    recipe.train(src)
    twin = work / "twin.keras"
    shutil.copy(src / "digits.keras", twin)
    return [src / "digits.keras", twin, src / "calibration.npz"]


def night(n: int, work: Path, sources, runs: int, rounds: int) -> tuple[float, float, int]:
    from harness.lab.config import load_lab_config
    from harness.lab.job import LabOptions, run_lab
    from harness.store.store import Store

    a, b, calib = sources
    store = f"sqlite:///{work / f'lab{n}.db'}"
    with boards(n, work / f"n{n}") as serials:
        lab = work / f"lab{n}.toml"
        lab.write_text(
            f'name = "bench{n}"\nstore = "{store}"\nbuild = "{work / "build"}"\n'
            f'devices = {json.dumps(serials)}\ndelegates = ["cpu", "xnnpack"]\n'
            f"[timing]\nruns = {runs}\nwarmup = 3\nrounds = {rounds}\n"
            + "".join(
                f'[[models]]\nsource = "{s}"\ncalibration = "{calib}"\n'
                'variants = ["fp32", "fp16", "dynamic", "int8"]\n'
                for s in (a, b)
            )
        )
        config = load_lab_config(lab)
        t0 = time.perf_counter()
        done = run_lab(config, LabOptions(night="bench", out_dir=work / f"out{n}"))
        wall = time.perf_counter() - t0
    st = Store(store)
    device_s, cells = 0.0, 0
    for run in st.find_runs(tag=f"lab:bench{n}:bench"):
        for r in st.cells(run.run_id):
            cells += r.status == "ok"
            s = r.samples
            us = sum(s.get("invoke_us") or []) + sum(s.get("warmup_us") or [])
            us += sum(r.extra.get("init_us_rounds") or [r.init_us or 0])
            us += sum(r.extra.get("first_us_rounds") or [r.first_us or 0])
            device_s += us / 1e6
    assert done.result.exit_code == 0, done.result.exit_code
    return wall, device_s, cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="1,2,4,8")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lab-throughput-"))
    os.environ.setdefault("HARNESS_LOCK_DIR", str(work / "locks"))
    sources = models(work)
    print(
        f"lab throughput: 2 models x 4 variants x 2 delegates per board, runs {args.runs}, "
        f"warmup 3, rounds {args.rounds}; host has {os.cpu_count()} cores"
    )
    # An untimed night first: it converts the models (TensorFlow) into the cache and
    # warms the page cache, which would otherwise all land on the 1-board figure.
    (work / "warmup").mkdir()
    night(1, work / "warmup", sources, args.runs, args.rounds)
    print(" boards  cells  wall s  on-device s  device/wall  wall vs 1 board  cells/min")
    base = None
    for n in (int(x) for x in args.boards.split(",")):
        wall, device_s, cells = night(n, work, sources, args.runs, args.rounds)
        base = base or wall / n  # wall per board at N=1
        print(
            f" {n:6}  {cells:5}  {wall:6.1f}  {device_s:11.2f}  {device_s / wall:10.1%}"
            f"  {wall / base:8.2f}x ({n}x work)  {60 * cells / wall:8.0f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
