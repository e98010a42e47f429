"""Compare two runs cell by cell and give each matching cell a verdict: pure functions.

Cells match when device, model, variant, delegate and threads are equal. Rules:

Latency, cells with raw samples (`samples["invoke_us"]` on both sides)
    change  = median(candidate) / median(baseline) - 1   (+0.20 = 20 % slower)
    CI      = bootstrap percentile interval of that change at level 1 - alpha (99 % by
              default), `resamples` independent resamples of each side (seeded per
              cell, so a cell's figures do not depend on which other cells exist)
    shift   = Hodges-Lehmann: exp(median over all pairs of log c_j - log b_i) - 1, the
              typical sample's move, the estimator that belongs to Mann-Whitney
    p       = two-sided Mann-Whitney U (normal approximation, tie and continuity
              corrections)
    slower / faster when p < alpha AND |shift| > the latency threshold (5 % by
    default); otherwise same. With one mode, change and shift agree and the CI
    excludes 0 whenever p is small; the verdict rests on the shift because when
    samples bunch into modes (a 5 us model on a busy host, some invokes preempted)
    the median jumps between them: every sample 25 % slower can show a median change
    of -28 % with a CI spanning 0, and 11 % of the samples moving from the fast mode
    to the slow one a median change of +100 %. The shift says +25 % and 0 % there.
    When change and shift point different ways, the cell carries a note.

Latency, aggregate-only cells (either side has no raw samples, only the LatencyStats
mean/std/n that Android's benchmark_model reports)
    change  = mean(candidate) / mean(baseline) - 1
    p       = Welch's two-sided t-test on mean/std/n
    CI      = Welch's interval of the difference of means at level 1 - alpha, divided
              by the baseline mean (taken as fixed), so it excludes 0 exactly when
              p < alpha
    shift   = change (there are no pairs to look at)
    the same rule decides slower / faster / same. With fewer than 2
    samples on a side there is no test: same, with a note.

Accuracy (top-1, a fraction in [0, 1] on both sides)
    change_pp = 100 * (candidate - baseline), in percentage points
    accuracy down when the drop exceeds the accuracy threshold (0.5 pp by default:
    0.978 -> 0.972 is a 0.6 pp drop). No test: the eval set is the same fixed data.

Overall verdict per cell, first that applies:
    new          the cell exists only in the candidate run
    missing      the cell exists only in the baseline run
    failed       either side has status "failed" (the note names the side and reason)
    unsupported  either side is "unsupported"
    accuracy down (latency's own verdict is kept in `latency.verdict`)
    slower / faster / same

Regressions (what makes `harness compare` exit 1): slower and accuracy down.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.measure.significance import (
    bootstrap_median_ratio,
    hodges_lehmann_ratio,
    mann_whitney_u,
    student_t_quantile,
    welch_t_test,
)

VERDICTS = ("slower", "accuracy down", "failed", "faster", "same", "new", "missing", "unsupported")
REGRESSIONS = frozenset({"slower", "accuracy down"})
SAMPLE_KEY = "invoke_us"


@dataclass(frozen=True)
class CompareConfig:
    """Thresholds and test settings; latency_threshold is relative (0.05 = 5 %)."""

    latency_threshold: float = 0.05
    accuracy_threshold_pp: float = 0.5
    alpha: float = 0.01
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.latency_threshold < 0 or self.accuracy_threshold_pp < 0:
            raise ValueError("thresholds must not be negative")
        if self.resamples < 100:
            raise ValueError("resamples must be at least 100")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyChange:
    """How a cell's steady-state latency moved; statistic is "median" or "mean"."""

    method: str  # "mann-whitney+bootstrap" or "welch"
    statistic: str
    baseline: float
    candidate: float
    change: float  # relative: +0.2 = 20 % slower
    shift: float  # Hodges-Lehmann relative shift (the change of the mean when aggregate)
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float | None
    n_baseline: int
    n_candidate: int
    verdict: str  # slower / faster / same

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyChange:
    baseline: float
    candidate: float
    change_pp: float
    down: bool

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
) -> Comparison:
    """Every cell of either run, in baseline order, then the candidate's new cells."""
    config = config or CompareConfig()
    base = {r.cell: r for r in baseline}
    cand = {r.cell: r for r in candidate}
    cells = list(dict.fromkeys([*base, *cand]))
    return Comparison(
        baseline_id,
        candidate_id,
        config,
        tuple(compare_cell(base.get(c), cand.get(c), config) for c in cells),
    )


def compare_cell(
    baseline: CellRecord | None, candidate: CellRecord | None, config: CompareConfig
) -> CellComparison:
    """The verdict for one cell (either side may be absent, never both)."""
    if baseline is None and candidate is None:
        raise ValueError("compare_cell needs at least one side")
    if baseline is None:
        return CellComparison(candidate.cell, "new", note="only in the candidate run")
    if candidate is None:
        return CellComparison(baseline.cell, "missing", note="not in the candidate run")
    cell = baseline.cell
    for status in ("failed", "unsupported"):
        sides = [
            (n, r)
            for n, r in (("baseline", baseline), ("candidate", candidate))
            if r.status == status
        ]
        if sides:
            note = "; ".join(f"{n}: {r.reason or status}" for n, r in sides)
            return CellComparison(cell, status, note=note)
    rng = np.random.default_rng([config.seed, zlib.crc32(cell.key.encode())])
    latency, note = compare_latency(baseline, candidate, config, rng)
    accuracy = compare_accuracy(baseline.accuracy, candidate.accuracy, config)
    verdict = (
        "accuracy down" if accuracy and accuracy.down else latency.verdict if latency else "same"
    )
    return CellComparison(cell, verdict, latency, accuracy, note)


def compare_latency(
    baseline: CellRecord, candidate: CellRecord, config: CompareConfig, rng: np.random.Generator
) -> tuple[LatencyChange | None, str | None]:
    """Raw samples on both sides: bootstrap + Mann-Whitney; else the aggregate rule."""
    x = baseline.samples.get(SAMPLE_KEY) or []
    y = candidate.samples.get(SAMPLE_KEY) or []
    if x and y:
        change = compare_samples(x, y, config, rng)
        return change, _modes_note(change, config.latency_threshold)
    if baseline.latency is None or candidate.latency is None:
        return None, "no latency figures on one side"
    change = compare_aggregates(baseline.latency, candidate.latency, config)
    note = "aggregate-only: Welch's t-test on mean/std/n"
    if change.p_value is None:
        note = "too few samples for a test"
    return change, note


def _modes_note(lat: LatencyChange, threshold: float) -> str | None:
    """Say so when the median and the typical sample tell different stories."""

    def side(v: float) -> int:
        return (v > threshold) - (v < -threshold)

    if not (math.isfinite(lat.change) and math.isfinite(lat.shift)):
        return None
    if side(lat.change) == side(lat.shift):
        return None
    return (
        f"samples fall into modes: the median moved {lat.change:+.0%}, the typical "
        f"sample {lat.shift:+.0%}; the verdict follows the typical sample"
    )


def compare_samples(x, y, config: CompareConfig, rng: np.random.Generator) -> LatencyChange:
    """The raw-sample rule (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mx, my = float(np.median(x)), float(np.median(y))
    change = my / mx - 1 if mx > 0 else math.nan
    level = 1 - config.alpha
    boots = bootstrap_median_ratio(x, y, config.resamples, rng)
    lo, hi = np.nanpercentile(boots, [100 * config.alpha / 2, 100 * (1 - config.alpha / 2)])
    p = mann_whitney_u(x, y).p_value
    shift = hodges_lehmann_ratio(x, y)
    return LatencyChange(
        "mann-whitney+bootstrap",
        "median",
        mx,
        my,
        change,
        shift,
        float(lo),
        float(hi),
        level,
        p,
        len(x),
        len(y),
        _latency_verdict(shift, p, config),
    )


def compare_aggregates(baseline, candidate, config: CompareConfig) -> LatencyChange:
    """The aggregate-only rule on two LatencyStats (mean, std, n); see the docstring."""
    m1, m2 = baseline.mean, candidate.mean
    change = m2 / m1 - 1 if m1 > 0 else math.nan
    level = 1 - config.alpha
    if baseline.n < 2 or candidate.n < 2 or not m1 > 0:
        return LatencyChange(
            "welch",
            "mean",
            m1,
            m2,
            change,
            change,
            -math.inf,
            math.inf,
            level,
            None,
            baseline.n,
            candidate.n,
            "same",
        )
    test = welch_t_test(m1, baseline.std, baseline.n, m2, candidate.std, candidate.n)
    se = math.sqrt(baseline.std**2 / baseline.n + candidate.std**2 / candidate.n)
    half = student_t_quantile(1 - config.alpha / 2, test.df) * se if se > 0 else 0.0
    lo, hi = (m2 - m1 - half) / m1, (m2 - m1 + half) / m1
    return LatencyChange(
        "welch",
        "mean",
        m1,
        m2,
        change,
        change,
        lo,
        hi,
        level,
        test.p_value,
        baseline.n,
        candidate.n,
        _latency_verdict(change, test.p_value, config),
    )


def _latency_verdict(shift: float, p: float, config: CompareConfig) -> str:
    if not (p < config.alpha and abs(shift) > config.latency_threshold):
        return "same"
    return "slower" if shift > 0 else "faster"


def compare_accuracy(
    baseline: float | None, candidate: float | None, config: CompareConfig
) -> AccuracyChange | None:
    """None unless both sides measured accuracy."""
    if baseline is None or candidate is None:
        return None
    change_pp = 100 * (candidate - baseline)
    # round away float noise so that a drop of exactly the threshold is not "down"
    down = round(-change_pp, 9) > config.accuracy_threshold_pp
    return AccuracyChange(baseline, candidate, change_pp, down)
