"""Do compare's throughput verdicts hold on real noise? Real load runs on this host only;
prints, never asserts.

Each run times real_verdicts.py's CNNs (base: 10 conv blocks; twin: 11, about 10 % more
work) on --device local, xnnpack, 1 thread, `--concurrency 1,2`, through run_sweep (the
code path of `harness run --concurrency 1,2`), 6 rounds of a --window second window.

  A/A   --runs runs of base back to back, each compared with the next: a throughput
        verdict of lower or higher is a false alarm (the same model on the same host).
  A/B   base then twin, --pairs times: twin serves about 9 % fewer samples/s, so
        "lower" is the right call, "inconclusive" the honest one under run-to-run noise.
  A/B paired  `harness run base twin --concurrency 1,2` then compare --a base --b twin:
        each round's rates come from the same minute (the paired rule).

Every comparison goes through harness.measure.compare as `harness compare` does, with
each cell's run-to-run noise from the runs stored before the candidate (as the CLI).
Printed per part: the share of throughput verdicts lower / higher / same /
inconclusive, and the rates' between-round CV and run-to-run SD seen.

Usage: python benchmarks/throughput_verdicts.py [--runs 8] [--pairs 4] [--paired 4]
           [--window 1] [--work build/real-verdicts]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from real_verdicts import build_models, history_before

from harness.devices.local import LocalDevice
from harness.measure.compare import CompareConfig, compare_cell, compare_models, round_rates
from harness.run import RunSpec, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store

CFG = CompareConfig()
WORDS = ("lower", "higher", "same", "inconclusive")


def load_run(store: Store, models: list[Path], window: float) -> str:
    spec = RunSpec(
        models[0],
        "local",
        delegates=("xnnpack",),
        more_models=tuple(models[1:]),
        concurrency=(1, 2),
        load=True,
        timing=TimingConfig(rounds=6, min_secs=6 * window, warmup=3),
    )
    return run_sweep(spec, store, LocalDevice())


def two_runs(store: Store, r1: str, r2: str) -> list[str]:
    """Throughput verdicts of every load cell, run r2 against r1 (history noise as the CLI)."""
    base = {r.cell: r for r in store.cells(r1) if r.status == "ok"}
    noise = history_before(store, r2)
    out = []
    for r in store.cells(r2):
        if r.cell in base and r.status == "ok":
            cfg = replace(CFG, run_noise=max(CFG.run_noise, noise.get(r.cell, 0.0)))
            t = compare_cell(base[r.cell], r, cfg).throughput
            out.append(t.verdict if t else "none")
    return out


def spread(store: Store, runs: list[str]) -> tuple[float, float]:
    """Median between-round CV of the rates, and the run-to-run SD of log typical rates."""
    cvs, levels = [], {}
    for run in runs:
        for r in store.cells(run):
            rates = [x for x in round_rates(r) or () if math.isfinite(x)]
            if r.status != "ok" or len(rates) < 2:
                continue
            logs = np.log(rates)
            cvs.append(float(np.std(logs, ddof=1)))
            levels.setdefault(r.cell, []).append(float(np.median(logs)))
    sds = [statistics.stdev(v) for v in levels.values() if len(v) > 2]
    return statistics.median(cvs), (statistics.median(sds) if sds else math.nan)


def show(title: str, verdicts: list[str], want: str, noise=None) -> None:
    n = len(verdicts)
    c = Counter(verdicts)
    shares = "  ".join(f"{w} {100 * c[w] / n:5.1f} %" for w in WORDS)
    print(f"\n{title}: {n} throughput comparisons ({want})")
    print(f"  {shares}")
    if noise:
        print(f"  rates: between-round CV {noise[0]:.1%}, run-to-run SD {noise[1]:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--paired", type=int, default=4)
    ap.add_argument("--window", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("build/real-verdicts"))
    args = ap.parse_args()
    models = build_models(args.work)
    base, twin = models["base"], models["twin"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/tv.db")
        aa = [load_run(store, [base], args.window) for _ in range(args.runs)]
        verdicts = [v for r1, r2 in zip(aa, aa[1:], strict=False) for v in two_runs(store, r1, r2)]
        show("A/A, two runs", verdicts, "lower/higher are false alarms", spread(store, aa))
        ab = []
        for _ in range(args.pairs):
            r1, r2 = load_run(store, [base], args.window), load_run(store, [twin], args.window)
            ab.append(two_runs(store, r1, r2))
        show("A/B twin, two runs", [v for x in ab for v in x], "want lower")
        paired = []
        for _ in range(args.paired):
            run = load_run(store, [base, twin], args.window)
            records = store.cells(run)
            result = compare_models(records, "base", "twin", CFG, run)
            paired += [c.throughput.verdict for c in result.cells if c.throughput]
        show("A/B twin, paired in one run", paired, "want lower")


if __name__ == "__main__":
    main()
