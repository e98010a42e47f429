"""How often `harness compare` cries wolf, and how small a slowdown it catches.

Simulated: two runs of one cell, each `--runs` raw samples (default 100, `harness run`'s
default), with realistic noise:
  * per-sample log-normal jitter (sigma 3 %),
  * heavy-tailed outliers: 2 % of samples multiplied by 1 + Pareto(alpha 1.5) (a GC pause,
    an interrupt, a frequency drop),
  * slow drift between runs: each run's level scaled by exp(N(0, 1 %)) (heat, background
    load, a different night).
Then the same with two harder noises: a slow mode (1.8x) holding about half the invokes
(preemption, a slower core), and 3 % drift per round (each round is a fresh process
at another moment), with 2 and with 3 rounds (harness's default) per run.
A/A: both runs from the same level; the false alarm rate is the share of "slower"
verdicts (a regression alarm) and of any non-"same" verdict. A/B: the candidate is
slower by s; power = share of "slower". All through harness.measure.compare at its
default thresholds (5 %, alpha 0.01).

Real, on --device local (fp32 and int8, cpu and xnnpack), compared the way
`harness compare` does:
  * A/A: the digits model (models/digits.py) timed twice, back to back;
  * A/B: the digits model against a wider version of itself (`--width`, default 4: every
    conv/dense layer has 4x the channels), same run settings, both with the held-out
    eval set, so each cell also shows the accuracy change. Expected: "slower".
Trained models stay under --work, and conversion goes through harness's cache, so a
rerun only times.

Usage: python benchmarks/compare_power.py [--trials 400] [--runs 100] [--no-real]
                                          [--width 4] [--work build/compare-power]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.cells import Cell, CellRecord
from harness.measure.compare import CompareConfig, compare_cell
from harness.measure.stats import latency_stats

CELL = Cell("sim", "model", "fp32", "cpu", 1)
SLOWDOWNS = (0.02, 0.04, 0.05, 0.06, 0.07, 0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.30)


def simulate_run(
    rng, n: int, level: float, jitter=0.03, outliers=0.02, drift=0.01, slow_mode=0.0, rounds=1
):
    # drift moves each round's level: rounds are fresh processes at different times
    levels = np.repeat(np.exp(rng.normal(0, drift, rounds)), -(-n // rounds))[:n]
    x = level * levels * rng.lognormal(0, jitter, n)
    spikes = rng.random(n) < outliers
    x[spikes] *= 1 + rng.pareto(1.5, spikes.sum())
    if slow_mode:  # a share of the invokes preempted or on a slower core: 1.8x
        x[rng.random(n) < rng.uniform(slow_mode - 0.05, slow_mode + 0.05)] *= 1.8
    return [float(v) for v in x]


def record(samples) -> CellRecord:
    return CellRecord(CELL, "ok", latency=latency_stats(samples), samples={"invoke_us": samples})


def median_ci_rule(c, config: CompareConfig) -> str:
    """The rule before shift: p < alpha AND the median's bootstrap CI excludes 0 AND
    |change| > threshold (kept here to show what the Hodges-Lehmann shift changed)."""
    lat = c.latency
    if lat.p_value < config.alpha and abs(lat.change) > config.latency_threshold:
        if lat.ci_low > 0:
            return "slower"
        if lat.ci_high < 0:
            return "faster"
    return "same"


def verdicts(rng, trials: int, n: int, slowdown: float, config, noise) -> tuple[list, list]:
    """(harness verdicts, median-CI-rule verdicts) of `trials` simulated pairs."""
    now, before = [], []
    for _ in range(trials):
        a = simulate_run(rng, n, 1000.0, **noise)
        b = simulate_run(rng, n, 1000.0 * (1 + slowdown), **noise)
        c = compare_cell(record(a), record(b), config)
        now.append(c.verdict)
        before.append(median_ci_rule(c, config))
    return now, before


NOISES = {
    "log-normal 3 % + 2 % Pareto(1.5) spikes + 1 % run drift": {},
    "the same, plus a slow mode (1.8x) taking 45-55 % of the invokes": {"slow_mode": 0.5},
    "log-normal 3 % + spikes + 3 % drift per round, 2 rounds": {"drift": 0.03, "rounds": 2},
    "log-normal 3 % + spikes + 3 % drift per round, 3 rounds (the default)": {
        "drift": 0.03,
        "rounds": 3,
    },
}


def simulated(trials: int, n: int) -> None:
    config = CompareConfig()
    for label, noise in NOISES.items():
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        print(f"simulated, {trials} pairs x {n} samples, 5 % / alpha 0.01, noise: {label}")
        print("  (harness: p and the Hodges-Lehmann shift; median-CI: the rule before, p AND")
        print("   the median's change AND its bootstrap CI excluding 0)")
        aa_now, aa_before = verdicts(rng, trials, n, 0.0, config, noise)
        for name, aa in (("harness", aa_now), ("median-CI", aa_before)):
            print(
                f"  A/A {name:9}  false alarm (slower): {aa.count('slower') / trials:5.1%}"
                f"   any verdict but same: {sum(v != 'same' for v in aa) / trials:5.1%}"
                f"   (target <= 5 %)"
            )
        smallest = {"harness": None, "median-CI": None}
        print("  slowdown  power: harness  median-CI")
        for s in SLOWDOWNS:
            now, before = verdicts(rng, trials, n, s, config, noise)
            powers = {"harness": now.count("slower") / trials}
            powers["median-CI"] = before.count("slower") / trials
            print(f"  {s:7.0%}  {powers['harness']:14.1%}  {powers['median-CI']:9.1%}")
            for k, v in powers.items():
                if smallest[k] is None and v >= 0.95:
                    smallest[k] = s
        found = {
            k: f"{v:.0%}" if v is not None else f"> {SLOWDOWNS[-1]:.0%}"
            for k, v in smallest.items()
        }
        print(
            f"  smallest slowdown detected with >= 95 % power at {n} runs: "
            f"harness {found['harness']}, median-CI {found['median-CI']}"
            f"  ({time.perf_counter() - t0:.1f} s)"
        )


def prepare_digits(work: Path, width: int) -> tuple[Path, Path]:
    """The digits recipe at `width`, trained once under work/w<width> and converted
    (fp32, int8) through harness's conversion cache; returns (variants dir, eval.npz).
    Every width is saved as digits.keras, so its cells are named "digits" and match."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    import digits as recipe

    from harness.convert.pipeline import ConvertSpec, convert_model

    src = work / f"w{width}"
    if not (src / "digits.keras").is_file():
        recipe.train(src, width=width)
    out = convert_model(
        ConvertSpec(src / "digits.keras", src / "v", ("fp32", "int8"), src / "calibration.npz")
    )
    return out.manifest_path.parent, src / "eval.npz"


def _sweep(model: Path, runs: int, store, eval_path: Path | None = None) -> str:
    from harness.devices.local import LocalDevice
    from harness.lab.sweep import RunSpec, run_sweep
    from harness.runners.python_runner import TimingConfig

    spec = RunSpec(
        model,
        "local",
        delegates=("cpu", "xnnpack"),
        timing=TimingConfig(runs=runs, warmup=10),
        eval_path=eval_path,
    )
    return run_sweep(spec, store, LocalDevice())


def _print_cells(result) -> None:
    for c in result.cells:
        lat, acc = c.latency, c.accuracy
        line = f"  {c.cell.variant:6} {c.cell.delegate:8} "
        if lat is None:
            print(line + f"{c.verdict}: {c.note or ''}")
            continue
        line += (
            f"median {lat.baseline:8.1f} -> {lat.candidate:8.1f} us  change {lat.change:+7.1%}  "
            f"shift {lat.shift:+7.1%}  CI [{lat.ci_low:+.1%}, {lat.ci_high:+.1%}]  "
            f"p {lat.p_value:.3g}  {c.verdict}"
        )
        if acc is not None:
            line += f"  top-1 {acc.baseline:.3f} -> {acc.candidate:.3f} ({acc.change_pp:+.1f} pp)"
        print(line)


def real(runs: int, width: int, work: Path) -> None:
    from harness.measure.compare import compare_runs
    from harness.store.store import Store

    work.mkdir(parents=True, exist_ok=True)
    narrow, narrow_eval = prepare_digits(work, 1)
    store = Store(f"sqlite:///{Path(tempfile.mkdtemp(prefix='compare-power-')) / 'r.db'}")

    a = _sweep(narrow, runs, store)
    b = _sweep(narrow, runs, store)
    result = compare_runs(store.cells(a), store.cells(b), CompareConfig(), a, b)
    print(f"real A/A: digits on local, {runs} runs per cell, two runs back to back")
    _print_cells(result)
    alarms = sum(c.verdict != "same" for c in result.cells)
    print(f"  false alarms: {alarms} of {len(result.cells)} cells")

    wide, wide_eval = prepare_digits(work, width)
    base = _sweep(narrow, runs, store, narrow_eval)
    cand = _sweep(wide, runs, store, wide_eval)
    result = compare_runs(store.cells(base), store.cells(cand), CompareConfig(), base, cand)
    print(
        f"real A/B: digits (16/32/64 channels) -> digits x{width} "
        f"({16 * width}/{32 * width}/{64 * width}), local, {runs} runs per cell, "
        f"same settings, held-out eval set"
    )
    _print_cells(result)
    slower = sum(c.verdict == "slower" for c in result.cells)
    print(f"  detected as slower: {slower} of {len(result.cells)} cells")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--width", type=int, default=4, help="the wider digits model (A/B)")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("build/compare-power"),
        help="trained models (kept, so a rerun trains and converts nothing)",
    )
    args = ap.parse_args()
    simulated(args.trials, args.runs)
    if not args.no_real:
        real(args.runs, args.width, args.work)


if __name__ == "__main__":
    main()
