"""How often `harness compare` cries wolf, and how small a slowdown it catches: simulated.

A simulated run of one cell is `rounds` rounds of `runs / rounds` samples, at a level
of its own (--run-sigma: log-normal SD of a whole run's level, the host at that hour;
real_verdicts.py prints it as "run-to-run"). Each round is a fresh process at another
moment, so it has its own level too:
  * between rounds: log-normal with SD --round-sigma, and with probability --spike-rate
    the round is 1.3-2x slow (the other core was busy): the two figures
    benchmarks/real_verdicts.py measures on this host ("between-round noise" lines);
  * within a round: log-normal jitter (--jitter, 3 %) and 2 % of samples multiplied by
    1 + Pareto(1.5) (an interrupt, a page fault).
A/A: two runs from the same level; false alarms are verdicts slower or faster. A/B: the
candidate is slower by s; power = share of "slower". Two rules on the same data:
    old      pooled samples: Mann-Whitney p < alpha and |Hodges-Lehmann shift| > 5 %
    harness  harness.measure.compare (round medians, Yuen's trimmed interval)
and, for A/B in one run, the paired rule (harness.measure.compare.compare_models) where
both models share each round's level and differ by --paired-sigma per round.

Its figures are meant to sit beside real_verdicts.py's: with the noise figures measured
there, the simulated false-alarm and detection rates should match the real ones.

Usage: python benchmarks/compare_power.py [--trials 400] [--run-sigma 0.02]
           [--round-sigma 0.03] [--spike-rate 0.06] [--paired-sigma 0.02]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
from scipy import stats

from harness.cells import Cell, CellRecord
from harness.measure.compare import CompareConfig, compare_cell
from harness.measure.significance import hodges_lehmann_ratio
from harness.measure.stats import latency_stats

CFG = CompareConfig()
SLOWDOWNS = (0.05, 0.075, 0.10, 0.15, 0.20)
SETTINGS = {"3 x 100 (before)": (3, 100), "6 x 100 (default)": (6, 100), "24 x 12": (24, 288)}


def round_levels(rng, rounds: int, sigma: float, spike_rate: float, run_sigma=0.0):
    levels = np.exp(rng.normal(0, sigma, rounds) + rng.normal(0, run_sigma))
    spikes = rng.random(rounds) < spike_rate
    levels[spikes] *= rng.uniform(1.3, 2.0, spikes.sum())
    return levels


def simulate(rng, levels: np.ndarray, runs: int, scale: float, jitter: float) -> list[np.ndarray]:
    k = len(levels)
    sizes = [runs // k + (r < runs % k) for r in range(k)]
    parts = []
    for lv, n in zip(levels, sizes, strict=True):
        x = 1000.0 * scale * lv * rng.lognormal(0, jitter, n)
        out = rng.random(n) < 0.02
        x[out] *= 1 + rng.pareto(1.5, out.sum())
        parts.append(x)
    return parts


def record(parts: list[np.ndarray], model: str = "m") -> CellRecord:
    samples = [float(v) for p in parts for v in p]
    return CellRecord(
        Cell("sim", model, "fp32", "cpu", 1),
        "ok",
        latency=latency_stats(samples),
        samples={"invoke_us": samples},
        extra={"round_sizes": [len(p) for p in parts]},
    )


def old_rule(a: CellRecord, b: CellRecord) -> str:
    """The verdict before this change: pooled samples, Mann-Whitney p < alpha and
    |Hodges-Lehmann shift| > the threshold (also used by real_verdicts.py)."""
    x, y = a.samples["invoke_us"], b.samples["invoke_us"]
    p = stats.mannwhitneyu(x, y, method="asymptotic").pvalue
    shift = hodges_lehmann_ratio(x, y)
    if p < CFG.alpha and abs(shift) > CFG.latency_threshold:
        return "slower" if shift > 0 else "faster"
    return "same"


def two_runs(rng, args, rounds: int, runs: int, slowdown: float) -> dict[str, Counter]:
    got = {"old": Counter(), "harness": Counter()}
    for _ in range(args.trials):
        sides = [
            record(simulate(rng, round_levels(rng, rounds, args.round_sigma, args.spike_rate,
                                              args.run_sigma), runs, 1 + s, args.jitter))
            for s in (0.0, slowdown)
        ]  # fmt: skip
        got["old"][old_rule(*sides)] += 1
        got["harness"][compare_cell(*sides, CFG).verdict] += 1
    return got


def paired(rng, args, rounds: int, runs: int, slowdown: float) -> Counter:
    got = Counter()
    for _ in range(args.trials):
        shared = round_levels(rng, rounds, args.round_sigma, args.spike_rate, args.run_sigma)
        a = simulate(rng, shared * np.exp(rng.normal(0, args.paired_sigma, rounds)), runs, 1.0,
                     args.jitter)  # fmt: skip
        b = simulate(rng, shared * np.exp(rng.normal(0, args.paired_sigma, rounds)), runs,
                     1 + slowdown, args.jitter)  # fmt: skip
        got[compare_cell(record(a), record(b), CFG, paired=True).verdict] += 1
    return got


def share(c: Counter, *keys: str) -> str:
    n = sum(c.values())
    return f"{sum(c[k] for k in keys) / n:6.1%}"


def row(label: str, rule: str, aa: Counter, detections: list[str]) -> None:
    alarms, same = share(aa, "slower", "faster"), share(aa, "same")
    cols = "  ".join(f"{v:>13}" for v in detections)
    print(f"              {label:18} {rule:8} {alarms:>10}  {same:>8}  {cols}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--round-sigma", type=float, default=0.03)
    ap.add_argument("--spike-rate", type=float, default=0.06)
    ap.add_argument("--paired-sigma", type=float, default=0.02)
    ap.add_argument("--jitter", type=float, default=0.03)
    ap.add_argument("--run-sigma", type=float, default=0.02)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    print(
        f"simulated, {args.trials} pairs per row; run-to-run SD {args.run_sigma:.1%}, "
        f"between-round SD {args.round_sigma:.1%}, "
        f"slow rounds {args.spike_rate:.0%} (1.3-2x), within-round jitter {args.jitter:.0%}; "
        f"threshold 5 %, alpha {CFG.alpha}"
    )
    print("\ntwo runs      rounds x runs      rule     A/A alarms  A/A same  "
          + "  ".join(f"+{s:.1%} slower" for s in SLOWDOWNS))  # fmt: skip
    for label, (rounds, runs) in SETTINGS.items():
        rows = {"old": [], "harness": []}
        aa = two_runs(rng, args, rounds, runs, 0.0)
        for s in SLOWDOWNS:
            ab = two_runs(rng, args, rounds, runs, s)
            for rule in rows:
                rows[rule].append(share(ab[rule], "slower"))
        for rule in rows:
            row(label, rule, aa[rule], rows[rule])
    print(f"\npaired in one run (per-round ratio SD {args.paired_sigma:.1%})")
    for label, (rounds, runs) in SETTINGS.items():
        aa = paired(rng, args, rounds, runs, 0.0)
        cols = [share(paired(rng, args, rounds, runs, s), "slower") for s in SLOWDOWNS]
        row(label, "paired", aa, cols)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
