"""Compare cells and give each matching pair a verdict: pure functions.

Two ways to pair cells:

- two runs (`compare_runs`): cells match when device, model, variant, delegate and
  threads are equal. The rounds of the two runs ran at different times.
- two models in one run (`compare_models`, `harness run A B` then `harness compare RUN
  --a A --b B`): cells match when device, variant, delegate and threads are equal, and
  round r of A is paired with round r of B: both ran in the same runner process at the
  same moment, so what that moment did to them cancels in their ratio.

Latency (see harness.measure.intervals for the procedure and its justification)
    The evidence is one value per round, the round's median (its mean where the runner
    printed aggregates only, Android's benchmark_model). Never the pooled samples: a
    round is a fresh process at another moment, and the 300 samples of one run are about
    as informative about the next run as its 3-10 rounds.
    change  = the relative change of the typical round centre: exp(trimmed mean of the
              log centres, candidate minus baseline) - 1 (+0.20 = 20 % slower); paired:
              the trimmed mean of the per-round log ratios
    CI      = Yuen's 20 %-trimmed Welch interval of that difference at 1 - alpha, its
              variance widened by 2 * run_noise^2: a whole run sits at its own level,
              which no number of rounds inside two runs can show (3 % by default, a
              lab cell's own night-to-night scatter where it has one). Paired: the
              trimmed one-sample interval of the per-round ratios; the run is shared
    verdict = slower / faster when the CI excludes 0 and the change passes the latency
              threshold (5 % by default); same when the whole CI lies inside
              ±threshold (equivalence shown); inconclusive otherwise, with a note
              naming the between-round noise and about how many rounds would resolve it
    Pooled-sample diagnostics, never the verdict: the Hodges-Lehmann shift of all
    samples (`shift`) and the Mann-Whitney p of all samples (`pooled_p`).

Accuracy (top-1, a fraction in [0, 1] on both sides)
    change_pp = 100 * (candidate - baseline), in percentage points
    accuracy down when the drop exceeds the accuracy threshold (0.5 pp by default).
    No test: the eval set is the same fixed data.

Overall verdict per cell, first that applies:
    new          the cell exists only in the candidate
    missing      the cell exists only in the baseline
    failed       either side has status "failed" (the note names the side and reason)
    unsupported  either side is "unsupported"
    accuracy down (latency's own verdict is kept in `latency.verdict`)
    slower / faster / same / inconclusive

Regressions (what makes `harness compare` exit 1): slower and accuracy down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.measure.intervals import (
    TRIM,
    ShiftInterval,
    inconclusive_note,
    latency_verdict,
    paired_shift,
    rounds_to_resolve,
    two_run_shift,
)
from harness.measure.metrics import MetricValue, legacy_top1, record_primary
from harness.measure.rounds import SAMPLE_KEY, RoundSummary, log_centers, round_summaries
from harness.measure.significance import hodges_lehmann_ratio

VERDICTS = (
    "slower",
    "accuracy down",
    "failed",
    "inconclusive",
    "faster",
    "same",
    "new",
    "missing",
    "unsupported",
)
REGRESSIONS = frozenset({"slower", "accuracy down"})


@dataclass(frozen=True)
class CompareConfig:
    """Thresholds and the test level; latency_threshold is relative (0.05 = 5 %)."""

    latency_threshold: float = 0.05
    # tolerated drop of a fraction metric (top1, auc, f1, ...), percentage points
    accuracy_threshold_pp: float = 0.5
    # tolerated worsening of the primary metric in its own threshold units (pp, dB,
    # label units: see harness.measure.metrics); None: the metric's default
    metric_threshold: float | None = None
    alpha: float = 0.01
    # relative SD of a whole run's level beyond its rounds (two-run comparisons only):
    # consecutive quiet runs on a 2-core host showed 1.8-3.2 % (real_verdicts.py)
    run_noise: float = 0.03

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if min(self.latency_threshold, self.accuracy_threshold_pp) < 0 or (
            self.metric_threshold is not None and self.metric_threshold < 0
        ):
            raise ValueError("thresholds must not be negative")
        if not 0 <= self.run_noise < 1:
            raise ValueError("run noise must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyChange:
    """How a cell's steady-state latency moved, judged on its rounds."""

    method: str  # "rounds" (two runs, Yuen) or "paired rounds" (one run, A/B)
    statistic: str  # what a round's centre is: "median", or "mean" (aggregate-only)
    baseline: float  # typical round centre, us
    candidate: float
    change: float  # relative: +0.2 = 20 % slower
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float | None  # of the round-level test
    rounds_baseline: int
    rounds_candidate: int
    noise: float  # between-round CV (paired: of the per-round ratio)
    rounds_needed: int | None  # inconclusive: about how many rounds would resolve it
    verdict: str  # slower / faster / same / inconclusive
    run_noise: float = 0.0  # run-to-run SD added to a two-run interval (0 when paired)
    shift: float | None = None  # pooled Hodges-Lehmann shift (diagnostic)
    pooled_p: float | None = None  # pooled Mann-Whitney p (diagnostic)
    n_baseline: int = 0  # samples
    n_candidate: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyChange:
    """How the primary metric moved; `down` means it got worse beyond the threshold,
    in the metric's own direction (lower is better for mae, say)."""

    baseline: float
    candidate: float
    change_pp: float | None  # fraction metrics: the change in percentage points
    down: bool
    metric: str = "top1"
    higher_is_better: bool = True
    change: float = 0.0  # candidate - baseline, in `units`
    units: str = "pp"  # the threshold's units
    threshold: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CellComparison:
    cell: Cell
    verdict: str
    latency: LatencyChange | None = None
    accuracy: AccuracyChange | None = None
    note: str | None = None

    @property
    def is_regression(self) -> bool:
        return self.verdict in REGRESSIONS

    def to_dict(self) -> dict:
        return {
            **self.cell.to_dict(),
            "verdict": self.verdict,
            "regression": self.is_regression,
            "latency": self.latency.to_dict() if self.latency else None,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class Comparison:
    baseline_id: str
    candidate_id: str
    config: CompareConfig
    cells: tuple[CellComparison, ...] = field(default_factory=tuple)
    paired: bool = False

    @property
    def regressions(self) -> tuple[CellComparison, ...]:
        return tuple(c for c in self.cells if c.is_regression)

    def counts(self) -> dict[str, int]:
        """Verdict -> number of cells, in VERDICTS order, zero counts left out."""
        got = [c.verdict for c in self.cells]
        return {v: got.count(v) for v in VERDICTS if v in got}


def parse_percent(text: str) -> float:
    """'5%' or '5' -> 0.05: a latency threshold is always given in percent."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise HarnessError(f"latency threshold {text!r} is not a percentage like 5%")
    return value / 100


def compare_runs(
    baseline: list[CellRecord],
    candidate: list[CellRecord],
    config: CompareConfig | None = None,
    baseline_id: str = "baseline",
    candidate_id: str = "candidate",
    run_noise: Mapping[Cell, float] | None = None,
) -> Comparison:
    """Every cell of either run, in baseline order, then the candidate's new cells.
    `run_noise` gives some cells their own run-to-run noise (a lab's history) in place of
    config.run_noise.

    HarnessError when the runs share no cell: there is nothing to compare."""
    config = config or CompareConfig()
    base = {r.cell: r for r in baseline}
    cand = {r.cell: r for r in candidate}
    if base and cand and not set(base) & set(cand):
        raise HarnessError(
            f"{baseline_id} and {candidate_id} share no cell (device, model, variant, "
            "delegate, threads, batch and concurrency must match); to compare two models "
            "of one run, use --a and --b"
        )
    cells = list(dict.fromkeys([*base, *cand]))
    noise = run_noise or {}

    def own(c: Cell) -> CompareConfig:
        return replace(config, run_noise=noise[c]) if c in noise else config

    return Comparison(
        baseline_id,
        candidate_id,
        config,
        tuple(compare_cell(base.get(c), cand.get(c), own(c)) for c in cells),
    )


def compare_models(
    records: list[CellRecord], a: str, b: str, config: CompareConfig | None = None, run_id=""
) -> Comparison:
    """Model `b` against model `a` in one run, cell by cell, round by round (paired).

    HarnessError when the run holds no such model, or the two share no cell."""
    config = config or CompareConfig()
    models = sorted({r.cell.model for r in records})
    for name in (a, b):
        if name not in models:
            raise HarnessError(
                f"run {run_id} holds no model {name!r} (it has {', '.join(models) or 'none'})"
            )
    if a == b:
        raise HarnessError("--a and --b name the same model")

    def side(model: str) -> dict[tuple, CellRecord]:
        return {_slot(r.cell): r for r in records if r.cell.model == model}

    base, cand = side(a), side(b)
    slots = list(dict.fromkeys([*base, *cand]))
    if not set(base) & set(cand):
        raise HarnessError(f"models {a!r} and {b!r} share no cell in run {run_id}")
    cells = tuple(compare_cell(base.get(s), cand.get(s), config, paired=True) for s in slots)
    return Comparison(f"{run_id}:{a}" if run_id else a, f"{run_id}:{b}" if run_id else b,
                      config, cells, paired=True)  # fmt: skip


def _slot(c: Cell) -> tuple:
    return (c.device, *c.slot)  # batch and concurrency too: only like meets like


def compare_cell(
    baseline: CellRecord | None,
    candidate: CellRecord | None,
    config: CompareConfig,
    paired: bool = False,
) -> CellComparison:
    """The verdict for one cell (either side may be absent, never both). `paired`: both
    records come from one run, their rounds side by side."""
    if baseline is None and candidate is None:
        raise ValueError("compare_cell needs at least one side")
    if baseline is None:
        return CellComparison(candidate.cell, "new", note="only in the candidate")
    if candidate is None:
        return CellComparison(baseline.cell, "missing", note="not in the candidate")
    cell = candidate.cell
    for status in ("failed", "unsupported"):
        sides = [
            (n, r)
            for n, r in (("baseline", baseline), ("candidate", candidate))
            if r.status == status
        ]
        if sides:
            note = "; ".join(f"{n}: {r.reason or status}" for n, r in sides)
            return CellComparison(cell, status, note=note)
    latency, note = compare_latency(baseline, candidate, config, paired)
    metric = record_primary(candidate)
    same = metric is not None and getattr(record_primary(baseline), "name", None) == metric.name
    accuracy = (
        compare_accuracy(baseline.accuracy, candidate.accuracy, config, metric) if same else None
    )
    verdict = (
        "accuracy down"
        if accuracy and accuracy.down
        else latency.verdict
        if latency
        else "inconclusive"
    )
    return CellComparison(cell, verdict, latency, accuracy, note)


def compare_latency(
    baseline: CellRecord, candidate: CellRecord, config: CompareConfig, paired: bool = False
) -> tuple[LatencyChange | None, str | None]:
    """The round-level rule (see the module docstring); None when a side has no timing."""
    rb, rc = round_summaries(baseline), round_summaries(candidate)
    if not rb or not rc:
        return None, "no latency figures on one side"
    statistic = "median"
    if rb[0].statistic != rc[0].statistic:  # one side aggregate-only: compare means
        rb, rc = _by_mean(rb), _by_mean(rc)
    if rb[0].statistic == "mean":
        statistic = "mean"
    lb, lc = log_centers(rb), log_centers(rc)
    alpha = config.alpha
    if paired:
        iv = paired_shift(lb, lc, alpha)
    else:
        iv = two_run_shift(lb, lc, alpha, run_noise=config.run_noise)
    return latency_change(iv, lb, lc, statistic, baseline, candidate, config)


def latency_change(
    iv: ShiftInterval,
    lb: np.ndarray,
    lc: np.ndarray,
    statistic: str,
    baseline: CellRecord,
    candidate: CellRecord,
    config: CompareConfig,
) -> tuple[LatencyChange, str | None]:
    """A LatencyChange from a round-level interval, with the pooled diagnostics."""
    verdict = latency_verdict(iv, config.latency_threshold)
    x = baseline.samples.get(SAMPLE_KEY) or []
    y = candidate.samples.get(SAMPLE_KEY) or []
    shift = pooled_p = None
    if x and y:
        shift = hodges_lehmann_ratio(x, y)
        pooled_p = float(stats.mannwhitneyu(x, y, method="asymptotic").pvalue)
    needed = rounds_to_resolve(iv, config.latency_threshold) if verdict == "inconclusive" else None
    notes = []
    if verdict == "inconclusive":
        notes.append(inconclusive_note(iv, config.latency_threshold))
    if statistic == "mean":
        notes.append("aggregate-only: per-round means")
    change = LatencyChange(
        method="paired rounds" if iv.method == "paired" else "rounds",
        statistic=statistic,
        baseline=_typical(lb),
        candidate=_typical(lc),
        change=iv.estimate,
        ci_low=iv.ci_low,
        ci_high=iv.ci_high,
        ci_level=iv.level,
        p_value=iv.p_value,
        rounds_baseline=iv.rounds_baseline,
        rounds_candidate=iv.rounds_candidate,
        noise=iv.noise,
        rounds_needed=needed,
        verdict=verdict,
        run_noise=iv.run_noise,
        shift=shift,
        pooled_p=pooled_p,
        n_baseline=len(x) or (baseline.latency.n if baseline.latency else 0),
        n_candidate=len(y) or (candidate.latency.n if candidate.latency else 0),
    )
    return change, "; ".join(notes) or None


def _by_mean(rounds: tuple[RoundSummary, ...]) -> tuple[RoundSummary, ...]:
    return tuple(replace(r, center=r.mean, statistic="mean") for r in rounds)


def _typical(logs: np.ndarray) -> float:
    """The typical round centre in us: exp of the 20 %-trimmed mean of the logs."""
    return float(np.exp(stats.trim_mean(logs, TRIM))) if len(logs) else math.nan


def compare_accuracy(
    baseline: float | None,
    candidate: float | None,
    config: CompareConfig,
    metric: MetricValue | None = None,
) -> AccuracyChange | None:
    """None unless both sides measured the primary metric (`metric`: its definition;
    None: top-1, as records before metrics were chosen)."""
    if baseline is None or candidate is None:
        return None
    m = metric or legacy_top1()
    change = m.threshold_scale * (candidate - baseline)
    threshold = config.metric_threshold
    if threshold is None:
        threshold = (
            config.accuracy_threshold_pp if m.threshold_units == "pp" else m.default_threshold
        )
    worse = -change if m.higher_is_better else change
    # round away float noise so that a drop of exactly the threshold is not "down"
    down = round(worse, 9) > threshold
    pp = change if m.threshold_units == "pp" else None
    return AccuracyChange(
        baseline,
        candidate,
        pp,
        down,
        m.name,
        m.higher_is_better,
        change,
        m.threshold_units,
        threshold,
    )
