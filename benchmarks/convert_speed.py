"""Conversion time per variant and source kind, cold and cached; CLI start time.

    .venv/bin/python benchmarks/convert_speed.py [--work build/convert-speed] [--before REV]

Trains the digits CNN once (models/digits.py), builds its ONNX twin (the test's
builder) and converts three sources, Keras, the fp32 .tflite and ONNX, into every
variant: cold (an empty conversion cache: the worker process starts and imports its
converters) and again cached (no worker at all). Per variant it prints the seconds the
worker reported for it; per source the wall time of the whole `convert_model` call.

Then the CLI's start: `harness --help` and `harness report --help`, each the median of
several runs, for this tree and for REV (default: the commit before the recipes work),
extracted with `git archive` and run with the same interpreter, so the only difference
is the code.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "tests"))

ALL = ("fp32", "fp16", "dynamic", "int8", "int16x8", "w8", "w4")
BEFORE = "e3f5809"  # main just before the quantisation recipes and ONNX sources


def convert_timed(source: Path, out: Path, calibration: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds, {variant: seconds the worker reported, or 0.0 for a cache hit})."""
    from harness.convert.pipeline import ConvertSpec, convert_model

    per: dict[str, float] = {}

    def progress(line: str) -> None:
        name, _, rest = line.partition(": ")
        if rest.startswith("done in "):
            per[name] = float(rest.split()[2])
        elif rest == "cache hit":
            per[name] = 0.0

    start = time.perf_counter()
    convert_model(ConvertSpec(source, out, ALL, calibration), progress=progress)
    return time.perf_counter() - start, per


def start_time(argv: list[str], repeat: int, cwd: Path | None = None) -> float:
    """Median wall seconds of running `python -c <cli main> ARGV`."""
    code = "import sys; sys.argv[0] = 'harness'; from harness.cli import main; main()"
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, *argv],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def tree_at(rev: str, dest: Path) -> Path:
    """The package as it was at `rev`, unpacked under `dest` (no checkout touched)."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "harness", "device_scripts"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "convert-speed")
    ap.add_argument("--before", default=BEFORE, help="git revision to compare start time with")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    work = args.work.resolve()
    os.environ["HARNESS_CACHE_DIR"] = str(work / "cache")
    subprocess.run(["rm", "-rf", str(work / "cache"), str(work / "out")], check=True)

    import digits as recipe
    from test_convert_recipes import _digits_onnx

    model_dir = work / "digits"
    if not (model_dir / "digits.keras").is_file():
        recipe.train(model_dir)
    calibration = model_dir / "calibration.npz"
    onnx_file = _digits_onnx(model_dir / "digits.keras", work / "digits.onnx")
    # the .tflite source: the Keras model's fp32, made once before the clock starts
    from harness.convert.pipeline import ConvertSpec, convert_model

    fp32_dir = work / "fp32"
    convert_model(ConvertSpec(model_dir / "digits.keras", fp32_dir, ("fp32",)))
    os.environ["HARNESS_CACHE_DIR"] = str(work / "cache-run")
    subprocess.run(["rm", "-rf", str(work / "cache-run")], check=True)

    sources = {
        "keras": model_dir / "digits.keras",
        "tflite": fp32_dir / "fp32.tflite",
        "onnx": onnx_file,
    }
    print(f"conversion of the digits CNN into {', '.join(ALL)} (seconds)")
    print(f"{'source':8} {'run':7} {'total':>7}  " + " ".join(f"{v:>8}" for v in ALL))
    for kind, src in sources.items():
        for run in ("cold", "cached"):
            total, per = convert_timed(src, work / "out" / kind, calibration)
            cells = " ".join(f"{per.get(v, float('nan')):8.2f}" for v in ALL)
            print(f"{kind:8} {run:7} {total:7.2f}  {cells}")
            if run == "cold":
                cold = total
        print(f"{'':8} cached/cold wall time: {total / cold:.3f}")

    print(f"\nCLI start, median of {args.repeat} runs (seconds)")
    with tempfile.TemporaryDirectory() as tmp:
        old = tree_at(args.before, Path(tmp))
        for argv in (["--help"], ["report", "--help"]):
            # interleaved one by one, so load from the other core hits both alike
            now_t, before_t = [], []
            for _ in range(args.repeat):
                now_t.append(start_time(argv, 1, cwd=ROOT))
                before_t.append(start_time(argv, 1, cwd=old))
            now, before = statistics.median(now_t), statistics.median(before_t)
            label = "harness " + " ".join(argv)
            print(
                f"{label:24} now {now:.3f}  before ({args.before}) {before:.3f}  "
                f"ratio {now / before:.3f}"
            )


if __name__ == "__main__":
    main()
