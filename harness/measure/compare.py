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

Throughput (load cells, `--concurrency`: samples/s over each round's load window)
    The evidence is one rate per round, samples / window_s of that round's window
    (`extra["load"]["rounds"]`; a record without them is one round at its pooled
    rate). The same interval and threshold as latency, on the log rates, run-to-run
    noise included for two runs, round r with round r when paired; the direction is
    inverted: lower is the bad direction. Verdicts: lower / higher / same /
    inconclusive. Cells without a load (batch > 1 at concurrency 1) get no throughput
    comparison: their rate is batch / latency, which the latency verdict already judges.

Energy (Android `--energy`: mJ per inference, harness.measure.energy)
    Only when both sides carry an energy figure. A side whose figure is not meaningful
    (charging: the charger's current is in the reading) gets no verdict (None), with a
    note naming why. Where both sides have 2 or more rounds (`round_mj`), one mJ figure
    per round under the same interval, threshold and run-to-run noise as latency; more
    is the bad direction. Verdicts: more / less / same / inconclusive. With one reading
    on a side, the change of the two figures is shown, "inconclusive": one reading per
    side says nothing of the scatter between readings.

Overall verdict per cell, first that applies:
    new          the cell exists only in the candidate
    missing      the cell exists only in the baseline
    failed       either side has status "failed" (the note names the side and reason)
    unsupported  either side is "unsupported"
    accuracy down (latency's own verdict is kept in `latency.verdict`)
    slower
    throughput down  the load throughput is decisively "lower" (latency's own verdict
                     is kept in `latency.verdict`, the throughput's in `throughput`)
    energy up        the energy is decisively "more"
    faster / same / inconclusive (latency's verdict)

A regression of any part is the cell's verdict, as accuracy down always was: the lab
(harness.lab.night: JUnit failures, the summary's regressions) and `counts` read the
verdict, so a throughput or energy regression reaches them as it reaches the exit code.
The note names every part that has something to say.

Regressions (what makes `harness compare` exit 1): slower, accuracy down, throughput
down and energy up.
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
    "throughput down",
    "energy up",
    "failed",
    "inconclusive",
    "faster",
    "same",
    "new",
    "missing",
    "unsupported",
)
REGRESSIONS = frozenset({"slower", "accuracy down", "throughput down", "energy up"})
# the latency rule's words for up and down, in each quantity's own words
THROUGHPUT_WORDS = {"slower": "higher", "faster": "lower"}
ENERGY_WORDS = {"slower": "more", "faster": "less"}


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
class ThroughputChange:
    """How a load cell's throughput moved, judged on each round's own samples/s."""

    method: str  # "rounds" (two runs, Yuen) or "paired rounds" (one run, A/B)
    baseline: float  # typical round rate, samples/s
    candidate: float
    change: float  # relative: -0.2 = 20 % fewer samples/s
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float | None
    rounds_baseline: int
    rounds_candidate: int
    noise: float  # between-round CV of the rate (paired: of the per-round ratio)
    rounds_needed: int | None
    verdict: str  # lower / higher / same / inconclusive
    run_noise: float = 0.0
    baseline_rounds: tuple[float, ...] = ()  # each round's samples/s, in run order
    candidate_rounds: tuple[float, ...] = ()
    pooled_baseline: float | None = None  # the record's figure: all samples / all windows
    pooled_candidate: float | None = None
    note: str | None = None

    @property
    def is_regression(self) -> bool:
        return self.verdict == "lower"

    def to_dict(self) -> dict:
        return asdict(self) | {
            "baseline_rounds": list(self.baseline_rounds),
            "candidate_rounds": list(self.candidate_rounds),
        }


@dataclass(frozen=True)
class EnergyChange:
    """How a cell's energy per inference moved: on each round's mJ where both sides have
    2 or more rounds, else the two figures without a verdict (see the module docstring).

    `verdict` None: a side's figure is not meaningful (charging), the note says which."""

    method: str  # "rounds", "paired rounds", "figures" (one reading a side), or "none"
    baseline: float | None  # typical round mJ per inference (method "figures": the figure)
    candidate: float | None
    change: float | None  # relative: +0.2 = 20 % more energy per inference
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    p_value: float | None
    rounds_baseline: int
    rounds_candidate: int
    noise: float | None  # between-round CV of mJ (paired: of the per-round ratio)
    rounds_needed: int | None
    verdict: str | None  # more / less / same / inconclusive; None: no verdict possible
    run_noise: float = 0.0
    baseline_rounds: tuple[float | None, ...] = ()  # each round's mJ per inference
    candidate_rounds: tuple[float | None, ...] = ()
    figure_baseline: float | None = None  # the pooled figure: net joules / inferences
    figure_candidate: float | None = None
    note: str | None = None

    @property
    def is_regression(self) -> bool:
        return self.verdict == "more"

    def to_dict(self) -> dict:
        return asdict(self) | {
            "baseline_rounds": list(self.baseline_rounds),
            "candidate_rounds": list(self.candidate_rounds),
        }


@dataclass(frozen=True)
class CellComparison:
    cell: Cell
    verdict: str
    latency: LatencyChange | None = None
    accuracy: AccuracyChange | None = None
    note: str | None = None
    throughput: ThroughputChange | None = None  # load cells on both sides only
    energy: EnergyChange | None = None  # energy figures on both sides only

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
            "throughput": self.throughput.to_dict() if self.throughput else None,
            "energy": self.energy.to_dict() if self.energy else None,
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
    throughput = compare_throughput(baseline, candidate, config, paired)
    energy = compare_energy(baseline, candidate, config, paired)
    verdict = overall_verdict(latency, accuracy, throughput, energy)
    parts = [
        note,
        _together_note(baseline, candidate),
        f"throughput: {throughput.note}" if throughput and throughput.note else None,
        f"energy: {energy.note}" if energy and energy.note else None,
    ]
    note = "; ".join(p for p in parts if p) or None
    return CellComparison(cell, verdict, latency, accuracy, note, throughput, energy)


def _together_note(baseline: CellRecord, candidate: CellRecord) -> str | None:
    """Said when one side was served beside other models (--together) and the other was
    not, or beside others: the latencies then measure different situations."""

    def how(r: CellRecord) -> str:
        t = r.extra.get("together")
        if not isinstance(t, dict):
            return "alone"
        return "together with " + (", ".join(t.get("with") or []) or "other models")

    b, c = how(baseline), how(candidate)
    if b == c:
        return None
    return f"measured differently: baseline {b}, candidate {c}"


def overall_verdict(
    latency: LatencyChange | None,
    accuracy: AccuracyChange | None,
    throughput: ThroughputChange | None = None,
    energy: EnergyChange | None = None,
) -> str:
    """The cell's verdict from its parts, first that applies: accuracy down, slower,
    throughput down, energy up, else latency's own verdict (inconclusive without one)."""
    if accuracy and accuracy.down:
        return "accuracy down"
    if latency and latency.verdict == "slower":
        return "slower"
    if throughput and throughput.is_regression:
        return "throughput down"
    if energy and energy.is_regression:
        return "energy up"
    return latency.verdict if latency else "inconclusive"


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


def round_rates(record: CellRecord) -> tuple[float, ...] | None:
    """Each round's samples/s of a load cell, in run order (nan where a round's window
    was malformed: device output is untrusted); None when the cell ran no load. A load
    without per-round windows (one round, or a record stored before they were kept) is
    one round at its pooled rate."""
    load = record.extra.get("load")
    pooled = record.extra.get("throughput_sps")
    if not isinstance(load, dict) or not _positive(pooled):
        return None
    rounds = load.get("rounds")
    if not isinstance(rounds, list) or not rounds:
        return (float(pooled),)
    rates = []
    for w in rounds:
        samples = w.get("samples") if isinstance(w, dict) else None
        window = w.get("window_s") if isinstance(w, dict) else None
        ok = _positive(samples) and _positive(window)
        rates.append(float(samples) / float(window) if ok else math.nan)
    return tuple(rates)


def compare_throughput(
    baseline: CellRecord, candidate: CellRecord, config: CompareConfig, paired: bool = False
) -> ThroughputChange | None:
    """The load throughput's change on per-round rates (see the module docstring); None
    unless both sides ran a load."""
    rb, rc = round_rates(baseline), round_rates(candidate)
    if rb is None or rc is None:
        return None
    iv, lb, lc = _round_shift(rb, rc, config, paired)
    verdict = _worded(latency_verdict(iv, config.latency_threshold), THROUGHPUT_WORDS)
    note = _part_note(iv, verdict, config, "samples/s", regression=verdict == "lower")
    return ThroughputChange(
        method="paired rounds" if paired else "rounds",
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
        rounds_needed=_needed(iv, verdict, config),
        verdict=verdict,
        run_noise=iv.run_noise,
        baseline_rounds=rb,
        candidate_rounds=rc,
        pooled_baseline=baseline.throughput_sps,
        pooled_candidate=candidate.throughput_sps,
        note=note,
    )


def compare_energy(
    baseline: CellRecord, candidate: CellRecord, config: CompareConfig, paired: bool = False
) -> EnergyChange | None:
    """The energy per inference's change (see the module docstring); None unless both
    sides carry an energy figure."""
    eb, ec = baseline.extra.get("energy"), candidate.extra.get("energy")
    if not isinstance(eb, dict) or not isinstance(ec, dict):
        return None
    fb, fc = _mj(eb.get("mj_per_inference")), _mj(ec.get("mj_per_inference"))
    rb, rc = _round_mj(eb), _round_mj(ec)
    level = 1 - config.alpha
    common = {
        "ci_level": level,
        "baseline_rounds": tuple(_none_if_nan(v) for v in rb),
        "candidate_rounds": tuple(_none_if_nan(v) for v in rc),
        "figure_baseline": fb,
        "figure_candidate": fc,
    }
    unfit = [
        f"{side}: {_why_not_meaningful(e)}"
        for side, e, f in (("baseline", eb, fb), ("candidate", ec, fc))
        if not e.get("meaningful") or f is None
    ]
    if unfit:
        return EnergyChange(
            method="none", baseline=fb, candidate=fc, change=None, ci_low=None, ci_high=None,
            p_value=None, rounds_baseline=len(rb), rounds_candidate=len(rc), noise=None,
            rounds_needed=None, verdict=None, note="no verdict: " + "; ".join(unfit),
            **common,
        )  # fmt: skip
    nb, nc = int(np.isfinite(rb).sum()), int(np.isfinite(rc).sum())
    if min(nb, nc) < 2:
        short = [s for s, n in (("baseline", nb), ("candidate", nc)) if n < 2]
        side = "each side" if len(short) == 2 else f"the {short[0]} side"
        return EnergyChange(
            method="figures", baseline=fb, candidate=fc, change=fc / fb - 1, ci_low=None,
            ci_high=None, p_value=None, rounds_baseline=nb, rounds_candidate=nc, noise=None,
            rounds_needed=None, verdict="inconclusive",
            note=f"one energy reading on {side}: a single reading cannot be judged "
            "against the scatter between readings (run with --rounds 3 or more)",
            **common,
        )  # fmt: skip
    iv, lb, lc = _round_shift(rb, rc, config, paired)
    verdict = _worded(latency_verdict(iv, config.latency_threshold), ENERGY_WORDS)
    return EnergyChange(
        method="paired rounds" if paired else "rounds",
        baseline=_typical(lb),
        candidate=_typical(lc),
        change=iv.estimate,
        ci_low=iv.ci_low,
        ci_high=iv.ci_high,
        p_value=iv.p_value,
        rounds_baseline=iv.rounds_baseline,
        rounds_candidate=iv.rounds_candidate,
        noise=iv.noise,
        rounds_needed=_needed(iv, verdict, config),
        verdict=verdict,
        run_noise=iv.run_noise,
        note=_part_note(iv, verdict, config, "mJ per inference", regression=verdict == "more"),
        **common,
    )


def _round_shift(
    base: tuple[float, ...], cand: tuple[float, ...], config: CompareConfig, paired: bool
) -> tuple[ShiftInterval, np.ndarray, np.ndarray]:
    """The latency rule's interval on per-round values of another quantity: its logs,
    two runs with run-to-run noise, or paired round r with round r (a round either side
    lacks drops out of the pairs). Also the logs each side's typical value comes from."""
    b, c = np.asarray(base, np.float64), np.asarray(cand, np.float64)
    if paired:
        n = min(len(b), len(c))
        keep = np.isfinite(b[:n]) & np.isfinite(c[:n])
        lb, lc = np.log(b[:n][keep]), np.log(c[:n][keep])
        return paired_shift(lb, lc, config.alpha), lb, lc
    lb, lc = np.log(b[np.isfinite(b)]), np.log(c[np.isfinite(c)])
    return two_run_shift(lb, lc, config.alpha, run_noise=config.run_noise), lb, lc


def _worded(verdict: str, words: dict[str, str]) -> str:
    """slower/faster in the quantity's own words; same and inconclusive as they are."""
    return words.get(verdict, verdict)


def _needed(iv: ShiftInterval, verdict: str, config: CompareConfig) -> int | None:
    if verdict != "inconclusive":
        return None
    return rounds_to_resolve(iv, config.latency_threshold)


def _part_note(
    iv: ShiftInterval, verdict: str, config: CompareConfig, unit: str, regression: bool
) -> str | None:
    """What a throughput or energy part says in the cell's note: why it is
    inconclusive, or the regression it found; nothing otherwise."""
    if verdict == "inconclusive":
        return inconclusive_note(iv, config.latency_threshold)
    if regression:
        return (
            f"{unit} {iv.estimate:+.1%} [{iv.ci_low:+.1%}, {iv.ci_high:+.1%}] over "
            f"{min(iv.rounds_baseline, iv.rounds_candidate)} rounds: {verdict}"
        )
    return None


def _round_mj(figure: dict) -> tuple[float, ...]:
    """Each round's mJ per inference (nan where a round had none); a figure without
    `round_mj` is one round, the figure itself."""
    rounds = figure.get("round_mj")
    if not isinstance(rounds, list) or not rounds:
        rounds = [figure.get("mj_per_inference")]
    return tuple(math.nan if _mj(v) is None else float(v) for v in rounds)


def _mj(v) -> float | None:
    return float(v) if _positive(v) else None


def _positive(v) -> bool:
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    return ok and math.isfinite(v) and v > 0


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else v


def _why_not_meaningful(figure: dict) -> str:
    """Why a side's energy figure cannot be judged, in the figure's own words where it
    has them (the battery status: charging puts the charger's current in the reading)."""
    if figure.get("note"):
        return str(figure["note"])
    status = figure.get("battery_status")
    if status and status != "Discharging":
        return f"battery status {status!r}: not on battery alone"
    return "no mJ per inference from the battery readings"
