"""The SLO pick: per device, the best cell that meets a latency budget. Pure functions.

Ranking rule (documented in README.md):

1. Eligible: status ``ok``, the chosen latency metric is known and <= the budget,
   and, when ``min_accuracy`` (`--min-metric`) is given, the run's primary quality
   metric is measured and at least that good in its own direction: >= it for top-1 or
   SNR, <= it for RMSE (a cell without the metric cannot show that it meets the floor,
   so it is left out).
   For the median of an aggregate-only cell that printed none (Android's
   benchmark_model prints count/mean/std) the mean stands in, marked as such: for
   right-skewed latencies it lies above the median, so the check errs on the safe
   side. p90/p99 have no stand-in: such cells are left out, with a note.
2. Best: the best primary metric (highest, or lowest for a lower-is-better one);
   values within ``accuracy_tie`` (its units) of the best count as equal, and among
   those the lowest latency wins. Cells without the metric rank after every cell with
   one (unknown is not better than known), by latency. Remaining ties: variant,
   delegate, threads (alphabetical/numeric), for a stable pick.
3. Runner-up: the best of the rest by the same rule, with what switching to it would
   gain or cost in latency and accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.measure.metrics import record_primary

METRICS = ("median", "p90", "p99", "e2e")
_UNITS = {"us": 1.0, "µs": 1.0, "μs": 1.0, "ms": 1e3, "s": 1e6}
_LATENCY_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|μs|ms|s)\s*$")


@dataclass(frozen=True)
class Budget:
    """What a cell must meet: latency (µs, by ``metric``) and optionally accuracy."""

    max_latency_us: float
    min_accuracy: float | None = None
    metric: str = "median"
    accuracy_tie: float = 0.0
    min_throughput_sps: float | None = None  # samples/s a cell must reach (--min-throughput)
    max_energy_mj: float | None = None  # mJ per inference a cell may cost (--max-energy)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise HarnessError(f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
        if not self.max_latency_us > 0:
            raise HarnessError("the latency budget must be positive")
        if self.accuracy_tie < 0:
            raise HarnessError("the accuracy tie tolerance cannot be negative")
        if self.min_throughput_sps is not None and not self.min_throughput_sps > 0:
            raise HarnessError("the throughput floor must be positive (samples/s)")
        if self.max_energy_mj is not None and not self.max_energy_mj > 0:
            raise HarnessError("the energy budget must be positive (mJ per inference)")

    def to_dict(self) -> dict:
        return {
            "max_latency_us": self.max_latency_us,
            "min_accuracy": self.min_accuracy,  # the primary metric's floor, its units
            "metric": self.metric,
            "accuracy_tie": self.accuracy_tie,
            "min_throughput_sps": self.min_throughput_sps,
            "max_energy_mj": self.max_energy_mj,
        }


@dataclass(frozen=True)
class Candidate:
    """One ok cell as the pick sees it."""

    cell: Cell
    latency_us: float
    accuracy: float | None  # the run's primary quality metric
    statistic: str = "median"  # what latency_us is: the budget's metric, or "mean"
    metric_name: str = "top1"
    higher_is_better: bool = True
    throughput_sps: float | None = None  # samples/s (CellRecord.throughput_sps)
    energy_mj: float | None = None  # mJ per inference, only where the figure is meaningful

    @property
    def score(self) -> float | None:
        """The metric oriented so that higher is better (for ranking)."""
        if self.accuracy is None:
            return None
        return self.accuracy if self.higher_is_better else -self.accuracy

    @property
    def label(self) -> str:
        return f"{self.cell.model}/{self.cell.setting}"

    def to_dict(self) -> dict:
        return {
            "cell": self.cell.to_dict(),
            "label": self.label,
            "latency_us": self.latency_us,
            "statistic": self.statistic,
            "accuracy": self.accuracy,
            "metric": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "throughput_sps": self.throughput_sps,
            "energy_mj": self.energy_mj,
        }


@dataclass(frozen=True)
class Pick:
    """The answer for one device."""

    device: str
    budget: Budget
    best: Candidate | None
    runner_up: Candidate | None
    eligible: int  # cells meeting the budget
    ok: int  # cells with status ok
    fastest: Candidate | None = None  # the fastest ok cell, to say by how much a miss is
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def met(self) -> bool:
        return self.best is not None

    @property
    def latency_delta_us(self) -> float | None:
        """Runner-up latency minus best latency (negative: the runner-up is faster)."""
        if self.best and self.runner_up:
            return self.runner_up.latency_us - self.best.latency_us
        return None

    @property
    def accuracy_delta(self) -> float | None:
        """Runner-up accuracy minus best accuracy (negative: the runner-up is worse)."""
        if (
            self.best
            and self.runner_up
            and None
            not in (
                self.best.accuracy,
                self.runner_up.accuracy,
            )
        ):
            return self.runner_up.accuracy - self.best.accuracy
        return None

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "met": self.met,
            "budget": self.budget.to_dict(),
            "best": self.best.to_dict() if self.best else None,
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "runner_up_latency_delta_us": self.latency_delta_us,
            "runner_up_accuracy_delta": self.accuracy_delta,
            "eligible": self.eligible,
            "ok": self.ok,
            "fastest": self.fastest.to_dict() if self.fastest else None,
            "notes": list(self.notes),
        }


def parse_latency(text: str) -> float:
    """'20ms' -> 20000.0 (µs); units us/µs, ms, s are required."""
    m = _LATENCY_RE.match(text or "")
    if not m:
        raise HarnessError(
            f"bad latency {text!r}: give a number with a unit, like 500us, 20ms or 1.5s"
        )
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if value <= 0:
        raise HarnessError(f"bad latency {text!r}: must be positive")
    return value


def parse_slo(text: str) -> Budget:
    """'20ms' (steady-state median) or 'p90:20ms' / 'e2e:5ms' -> Budget."""
    metric, sep, latency = (text or "").partition(":")
    if not sep:
        metric, latency = "median", metric
    return Budget(max_latency_us=parse_latency(latency), metric=metric.strip().lower())


def metric_value(record: CellRecord, metric: str) -> tuple[float | None, str]:
    """(latency in µs or None, the statistic it is): the metric itself, or the mean
    standing in for the median of an aggregate-only cell that printed no median."""
    if record.status != "ok":
        return None, metric
    if metric == "e2e":
        return (record.end_to_end.median if record.end_to_end else None), metric
    lat = record.latency
    if lat is None:
        return None, metric
    value = getattr(lat, metric)
    if value is None and metric == "median" and lat.aggregate_only:
        return lat.mean, "mean"
    return value, metric


def recommend(records: list[CellRecord], budget: Budget) -> list[Pick]:
    """One Pick per device, in the order the devices first appear."""
    return [
        pick_for_device(device, [r for r in records if r.cell.device == device], budget)
        for device in dict.fromkeys(r.cell.device for r in records)
    ]


def pick_for_device(device: str, records: list[CellRecord], budget: Budget) -> Pick:
    """Apply the ranking rule (module doc) to one device's records."""
    ok = [
        _candidate(r, lat, stat)
        for r in records
        for lat, stat in [metric_value(r, budget.metric)]
        if lat is not None
    ]
    _check_floor(ok, budget.min_accuracy)
    fast = [
        c
        for c in ok
        if c.latency_us <= budget.max_latency_us
        and _meets_throughput(c, budget.min_throughput_sps)
        and _meets_energy(c, budget.max_energy_mj)
    ]
    eligible = [c for c in fast if _meets_accuracy(c, budget.min_accuracy)]
    ranked = rank(eligible, budget.accuracy_tie)
    fastest = min(ok, key=lambda c: (c.latency_us, _tiebreak(c)), default=None)
    return Pick(
        device=device,
        budget=budget,
        best=ranked[0] if ranked else None,
        runner_up=ranked[1] if len(ranked) > 1 else None,
        eligible=len(eligible),
        ok=len(ok),
        fastest=fastest,
        notes=_notes(records, ok, fast, eligible, budget),
    )


def rank(candidates: list[Candidate], accuracy_tie: float = 0.0) -> list[Candidate]:
    """Candidates best first (module doc, rule 2), by repeated selection."""
    rest, ranked = list(candidates), []
    while rest:
        measured = [c for c in rest if c.score is not None]
        if measured:
            top = max(c.score for c in measured)
            pool = [c for c in measured if c.score >= top - accuracy_tie]
        else:
            pool = rest
        best = min(pool, key=lambda c: (c.latency_us, _tiebreak(c)))
        ranked.append(best)
        rest.remove(best)
    return ranked


def _meets_accuracy(c: Candidate, floor: float | None) -> bool:
    if floor is None:
        return True
    if c.accuracy is None:
        return False
    return c.accuracy >= floor if c.higher_is_better else c.accuracy <= floor


def _meets_throughput(c: Candidate, floor: float | None) -> bool:
    # a cell without a throughput figure cannot show that it meets the floor
    return floor is None or (c.throughput_sps is not None and c.throughput_sps >= floor)


def _meets_energy(c: Candidate, budget: float | None) -> bool:
    # a cell without a meaningful energy figure (no --energy, charging) cannot show it
    return budget is None or (c.energy_mj is not None and c.energy_mj <= budget)


def _candidate(r: CellRecord, latency_us: float, statistic: str) -> Candidate:
    m = record_primary(r)
    rate = r.throughput_sps
    e = r.extra.get("energy")
    mj = e.get("mj_per_inference") if isinstance(e, dict) and e.get("meaningful") else None
    if m is None:
        return Candidate(r.cell, latency_us, None, statistic, throughput_sps=rate, energy_mj=mj)
    return Candidate(r.cell, latency_us, m.value, statistic, m.name, m.higher_is_better, rate, mj)


def _check_floor(cands: list[Candidate], floor: float | None) -> None:
    """A floor outside [0, 1] for a fraction metric is a mistake, not an empty pick."""
    fractions = {c.metric_name for c in cands if c.metric_name in _FRACTIONS}
    if floor is not None and fractions and not 0.0 <= floor <= 1.0:
        name = sorted(fractions)[0]
        raise HarnessError(
            f"--min-metric (--min-accuracy) {floor:g} is not in [0, 1]: {name} is a fraction"
        )


_FRACTIONS = ("top1", "topk", "auc", "precision", "recall", "f1", "agreement")


def _tiebreak(c: Candidate) -> tuple:
    return c.cell.slot


def _notes(records, ok, fast, eligible, budget: Budget) -> tuple[str, ...]:
    notes = []
    means = sum(c.statistic == "mean" for c in ok)
    if means:
        notes.append(
            f"{means} aggregate-only cell(s) judged by the mean (marked ᵐ): the tool "
            "printed no median, and the mean of skewed latencies lies above it"
        )
    blind = sum(
        r.status == "ok" and r.latency is not None and r.latency.aggregate_only
        for r in records
        if metric_value(r, budget.metric)[0] is None
    )
    if blind:
        notes.append(
            f"{blind} aggregate-only cell(s) left out: the tool printed no {budget.metric}"
        )
    if not ok:
        notes.append(f"no ok cell with a {budget.metric} latency ({len(records)} cells)")
    elif not fast:
        rate, mj = budget.min_throughput_sps, budget.max_energy_mj
        floor = f" at {rate:g} samples/s or more" if rate else ""
        floor += f" at {mj:g} mJ per inference or less (measured on battery)" if mj else ""
        notes.append(f"no ok cell is within {format_us(budget.max_latency_us)}{floor}")
    elif budget.min_accuracy is not None and len(eligible) < len(fast):
        unknown = sum(1 for c in fast if c.accuracy is None)
        below = len(fast) - len(eligible) - unknown
        if below:
            notes.append(f"{below} fast enough but below {_name(fast)} {budget.min_accuracy:g}")
        if unknown:
            notes.append(f"{unknown} fast enough but without measured accuracy (no --eval)")
    return tuple(notes)


def format_us(us: float | None) -> str:
    """Human latency: 850 µs, 12.3 ms, 1.20 s."""
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1e3:.2f} ms" if us < 1e4 else f"{us / 1e3:.1f} ms"
    return f"{us / 1e6:.2f} s"


def describe(pick: Pick) -> list[str]:
    """Plain-text lines for the terminal, one fact per line."""
    b = pick.budget
    floor = ""
    if b.min_accuracy is not None:
        first = pick.best or pick.fastest
        op = ">=" if first is None or first.higher_is_better else "<="
        floor = f", {_name([first] if first else [])} {op} {b.min_accuracy:g}"
    if b.min_throughput_sps is not None:
        floor += f", throughput >= {b.min_throughput_sps:g} samples/s"
    if b.max_energy_mj is not None:
        floor += f", energy <= {b.max_energy_mj:g} mJ/inference"
    head = f"{pick.device}: {b.metric} <= {format_us(b.max_latency_us)}{floor}"
    if not pick.met:
        lines = [f"{head}: NOT MET ({pick.eligible} of {pick.ok} ok cells qualify)"]
        if pick.fastest:
            lines.append(
                f"  fastest: {pick.fastest.label} at {format_latency(pick.fastest)}"
                f" ({_acc(pick.fastest)})"
            )
        return lines + [f"  note: {n}" for n in pick.notes]
    best = pick.best
    lines = [
        f"{head}: {pick.eligible} of {pick.ok} ok cells qualify",
        f"  best:      {best.label}  {format_latency(best)}  {_acc(best)}",
    ]
    if pick.runner_up:
        r = pick.runner_up
        lines.append(f"  runner-up: {r.label}  {format_latency(r)}  {_acc(r)}")
        lines.append(f"             {_tradeoff(pick)}")
    return lines + [f"  note: {n}" for n in pick.notes]


def _tradeoff(pick: Pick) -> str:
    d = pick.latency_delta_us or 0.0
    base = pick.best.latency_us
    rel = f" ({d / base:+.0%})" if base else ""
    lat = f"{format_us(abs(d))} {'slower' if d > 0 else 'faster'}{rel}" if d else "same latency"
    da = pick.accuracy_delta
    name = _name([pick.best])
    if da is None:
        acc = f"{name} not comparable"
    elif da == 0:
        acc = f"same {name}"
    elif pick.best.metric_name in _FRACTIONS:
        acc = f"{name} {da * 100:+.2f} pt"
    else:
        acc = f"{name} {da:+.4g}"
    return f"{lat}, {acc}"


def format_latency(c: Candidate) -> str:
    """The candidate's latency, marked ᵐ when the mean stood in for the median."""
    return format_us(c.latency_us) + (" ᵐ" if c.statistic == "mean" else "")


def _acc(c: Candidate | None) -> str:
    """The candidate's primary metric: `acc 0.9790` for top-1 (as before metrics were
    chosen), else by its name."""
    name = "acc" if c is None or c.metric_name == "top1" else c.metric_name
    if c is None or c.accuracy is None:
        return f"{name} -"
    return f"{name} {c.accuracy:.4f}" if name == "acc" else f"{name} {c.accuracy:.4g}"


def _name(cands: list[Candidate]) -> str:
    """How the primary metric is named in a note: `accuracy` for top-1."""
    name = next((c.metric_name for c in cands if c is not None), "top1")
    return "accuracy" if name == "top1" else name
