"""A lab night in the store: its runs, its baseline, and the verdict on each planned cell.

A night is every run tagged `lab:<name>:<night>` (one per device and model, see
harness.lab.worker). Baseline policies (the lab file's `baseline`):

    previous   the latest earlier night of the same lab (by when its first run began)
    run:<ID>   one pinned run (e.g. a `harness run` of a release build)
    tag:<TAG>  every run with that tag (e.g. a whole night: tag:lab:nightly:2026-05-01)
    none       no comparison

Cells are compared with harness.measure.compare (same round-level rule and thresholds
as `harness compare`), with one difference: a nightly lab knows each cell's own
night-to-night noise, the robust scatter of its medians over the lab's earlier nights
(MAD of successive log differences, harness.measure.steps.noise_level, from 3 nights
on), and that replaces the compare's generic run-to-run noise in the cell's interval.
A move the cell makes on ordinary nights is then not a regression. The slow creep that
no single night shows is `harness lab history`'s change points' job.

Like meets like: a cell is compared (and its noise taken) only with cells measured the
same way, by its run's measure_mode (a load window, `sustained` seconds, `energy`,
`unplug`), which a Cell does not carry: a sustained cell's latency is its pooled
windows, a hot device's, and a night that turned `sustained` on is not slower for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.lab.worker import DeviceOutcome
from harness.measure.compare import (
    REGRESSIONS,
    CellComparison,
    CompareConfig,
    compare_models,
    compare_runs,
)
from harness.measure.series import level_noise
from harness.store.store import RunInfo, Store

SUFFIX = "@baseline"  # a lab model's baseline twin, swept beside it (harness.lab.paired)


@dataclass(frozen=True)
class Baseline:
    policy: str
    label: str | None  # what the summary names: a night, a run id, a tag
    run_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"policy": self.policy, "label": self.label, "run_ids": list(self.run_ids)}


@dataclass(frozen=True)
class CellResult:
    """One planned cell of the night: measured, failed, lost or filtered out."""

    cell: Cell
    status: str  # ok | failed | unsupported | filtered | lost
    reason: str | None = None
    run_id: str | None = None
    median_us: float | None = None
    ci_low_us: float | None = None
    ci_high_us: float | None = None
    accuracy: float | None = None
    verdict: str | None = None  # harness.measure.compare's verdict vs the baseline
    change: float | None = None  # relative change of the median vs the baseline
    note: str | None = None
    shift: float | None = None  # pooled Hodges-Lehmann shift (a diagnostic)
    night_noise: float | None = None  # night-to-night SD of the log median, earlier nights
    # `sustained` cells: duration_s, windows, onset_s (throttling), steady_ratio
    sustained: dict | None = None
    energy_mj: float | None = None  # `energy`: mJ per inference above idle (on battery)
    detail: str | None = None  # the sustained and energy figures as one line (summary.md)

    @property
    def outcome(self) -> str:
        """JUnit's view: failure (regression, failed or lost), skipped (not measured, or
        measured without a verdict: inconclusive), or passed."""
        if self.status in ("failed", "lost") or self.verdict in REGRESSIONS:
            return "failure"
        if self.status in ("filtered", "unsupported") or self.verdict == "inconclusive":
            return "skipped"
        return "passed"

    def to_dict(self) -> dict:
        return {
            **self.cell.to_dict(),
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "run_id": self.run_id,
            "median_us": self.median_us,
            "ci_low_us": self.ci_low_us,
            "ci_high_us": self.ci_high_us,
            "accuracy": self.accuracy,
            "verdict": self.verdict,
            "change": self.change,
            "shift": self.shift,
            "night_noise": self.night_noise,
            "note": self.note,
            "sustained": self.sustained,
            "energy_mj": self.energy_mj,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class NightResult:
    lab: str
    night: str
    tag: str
    store_url: str
    baseline: Baseline
    devices: tuple[DeviceOutcome, ...]
    cells: tuple[CellResult, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count(self, outcome: str) -> int:
        return sum(c.outcome == outcome for c in self.cells)

    @property
    def regressions(self) -> list[CellResult]:
        return [c for c in self.cells if c.verdict in REGRESSIONS]

    @property
    def all_unreachable(self) -> bool:
        return bool(self.devices) and not any(d.reachable for d in self.devices)

    @property
    def exit_code(self) -> int:
        """2: no device could be reached; 1: a regression or a failed cell; 0: clean."""
        if self.all_unreachable:
            return 2
        return 1 if self.count("failure") else 0


def resolve_baseline(store: Store, policy: str, tag_prefix: str, night_tag: str) -> Baseline:
    """The runs to compare against; HarnessError when a pinned run or tag does not exist."""
    if policy == "none":
        return Baseline(policy, None)
    kind, _, arg = policy.partition(":")
    if kind == "run":
        store.get_run(arg)  # one-line error when missing
        return Baseline("run", arg, (arg,))
    if kind == "tag":
        runs = store.find_runs(tag=arg)
        if not runs:
            raise HarnessError(f"baseline tag:{arg}: no run in {store.url} has that tag")
        return Baseline("tag", arg, tuple(r.run_id for r in runs))
    nights = _nights(store.find_runs(tag_prefix=tag_prefix))
    tonight = nights.pop(night_tag, None)
    start = _aware(tonight[0].created_at) if tonight else dt.datetime.max.replace(tzinfo=dt.UTC)
    earlier = [
        (_aware(runs[0].created_at), tag)
        for tag, runs in nights.items()
        if _aware(runs[0].created_at) < start
    ]
    if not earlier:
        return Baseline("previous", None)
    _, tag = max(earlier)
    return Baseline("previous", tag.removeprefix(tag_prefix), tuple(r.run_id for r in nights[tag]))


def night_records(store: Store, tag: str) -> dict[Cell, tuple[str, CellRecord]]:
    """Every stored cell of the night's runs: cell -> (run id, record)."""
    out = {}
    for run in store.find_runs(tag=tag):
        for r in store.cells(run.run_id):
            out[r.cell] = (run.run_id, r)
    return out


def judge_night(
    store: Store,
    lab: str,
    night: str,
    tag: str,
    outcomes: list[DeviceOutcome],
    baseline: Baseline,
    compare: CompareConfig,
    notes: tuple[str, ...] = (),
) -> NightResult:
    """Every planned cell of the night with its status and its verdict vs the baseline:
    paired against the baseline's file measured in the same run where the night did
    that (harness.lab.paired), else across the two nights."""
    stored = night_records(store, tag)
    mode_of = {run.run_id: measure_mode(run.config) for run in store.find_runs(tag=tag)}
    modes = {c: mode_of.get(run_id) for c, (run_id, _) in stored.items()}
    base, unlike = [], 0
    for run_id in baseline.run_ids:
        mode = measure_mode(store.get_run(run_id).config)
        for r in store.cells(run_id):
            if modes.get(r.cell, mode) == mode:
                base.append(r)
            else:
                unlike += 1
    if unlike:
        notes = (
            *notes,
            f"{unlike} baseline cell(s) were measured otherwise (load window, sustained, "
            "energy or unplug differ from tonight's): not compared",
        )
    tonight = [r for _, r in stored.values()]
    noise = night_noise(store, f"lab:{lab}:", tag, modes)
    verdicts = {}
    if {r.cell for r in base} & {r.cell for r in tonight}:  # else nothing to compare
        label = baseline.label or ""
        result = compare_runs(base, tonight, compare, label, tag, run_noise=noise)
        verdicts = {c.cell: c for c in result.cells}
    verdicts |= paired_verdicts(stored, compare)
    cells = []
    for d in outcomes:
        for m in d.models:
            for c in m.planned:
                cells.append(_result(c, stored.get(c), verdicts.get(c), d.lost, noise.get(c)))
            cells.extend(CellResult(c, "filtered", reason) for c, reason in m.filtered)
    return NightResult(
        lab, night, tag, store.url, baseline, tuple(outcomes), tuple(cells), tuple(notes)
    )


def paired_verdicts(
    stored: dict[Cell, tuple[str, CellRecord]], compare: CompareConfig
) -> dict[Cell, CellComparison]:
    """Cell -> its verdict against the baseline's file measured beside it in the same run
    (a `<model>@baseline` twin), for every cell whose file differs from the twin's."""
    runs: dict[str, list[CellRecord]] = {}
    for run_id, r in stored.values():
        runs.setdefault(run_id, []).append(r)
    out = {}
    for run_id, records in runs.items():
        sha = {(r.cell.model, _slot(r.cell)): r.model_sha256 for r in records}
        for twin in sorted({r.cell.model for r in records if r.cell.model.endswith(SUFFIX)}):
            model = twin.removesuffix(SUFFIX)
            if not any(r.cell.model == model for r in records):
                continue
            for c in compare_models(records, twin, model, compare, run_id).cells:
                if sha.get((model, _slot(c.cell))) == sha.get((twin, _slot(c.cell))):
                    continue  # the same file: tonight's file is not new for this variant
                note = "paired: the baseline's file measured beside tonight's in this run"
                out[c.cell] = replace(c, note="; ".join(n for n in (note, c.note) if n))
    return out


def _slot(c: Cell) -> tuple:
    return (c.device, *c.slot)  # batch and concurrency too: only like meets like


def night_noise(
    store: Store, tag_prefix: str, tonight: str, modes: dict[Cell, tuple | None] | None = None
) -> dict[Cell, float]:
    """Cell -> night-to-night SD of its log median over the lab's earlier nights (cells
    with 3 or more ok nights), each cell's from the nights that measured it as tonight
    does (`modes`: cell -> tonight's measure_mode; a cell not in it takes every night)."""
    modes = modes or {}
    earlier = []
    for night, runs in _nights(store.find_runs(tag_prefix=tag_prefix)).items():
        if night == tonight:
            continue
        for run in runs:
            mode = measure_mode(run.config)
            earlier.append([r for r in store.cells(run.run_id) if modes.get(r.cell, mode) == mode])
    return level_noise(earlier)


def measure_mode(config: dict) -> tuple:
    """How a run measured its cells beyond the cells' own axes, from its stored RunSpec:
    (load window, sustained seconds, energy, unplug). Runs stored before a key existed
    read as its default, so older nights still meet the nights that do not use it."""
    options = config.get("runner_options") or {}
    return (
        bool(config.get("load")),
        config.get("sustained_s") or None,
        bool(options.get("energy")),
        bool(options.get("unplug")),
    )


def _result(cell: Cell, stored, verdict, lost: str | None, sigma=None) -> CellResult:
    if stored is None:
        reason = lost or "not measured (no record was stored)"
        return CellResult(cell, "lost", f"{reason}; `harness lab run --resume` measures it")
    run_id, r = stored
    lat = r.latency if r.status == "ok" else None
    latency_change = verdict.latency if verdict else None
    return CellResult(
        cell,
        r.status,
        r.reason,
        run_id,
        lat.center if lat else None,
        lat.ci_low if lat else None,
        lat.ci_high if lat else None,
        r.accuracy,
        verdict.verdict if verdict else None,
        latency_change.change if latency_change else None,
        verdict.note if verdict else None,
        latency_change.shift if latency_change else None,
        sigma,
        *_figures(r),
    )


def _figures(r: CellRecord) -> tuple[dict | None, float | None, str | None]:
    """(sustained summary, mJ per inference, one line of both) of an ok cell, each None
    when the cell has none: a sustained cell's latency alone hides its throttling, and
    an energy cell's figure is the reason it was measured."""
    if r.status != "ok":
        return None, None, None
    from harness.report.sustained_view import sustained_line

    parts, sustained, mj = [], None, None
    s = r.extra.get("sustained")
    if isinstance(s, dict):
        onset = s.get("onset") or {}
        sustained = {
            "duration_s": s.get("duration_s"),
            "windows": len(s.get("windows") or []),
            "onset_s": onset.get("t_s"),
            "steady_ratio": s.get("steady_ratio"),
        }
        line = sustained_line(r) or ""
        parts.append(line.removeprefix(f"{r.cell.model} {r.cell.setting} "))
    e = r.extra.get("energy")
    if isinstance(e, dict) and isinstance(e.get("mj_per_inference"), int | float):
        if e.get("meaningful"):
            mj = float(e["mj_per_inference"])
            parts.append(f"energy {mj:.3g} mJ per inference")
        else:  # a charging phone: the figure is kept in the store, not reported as one
            parts.append(f"energy not meaningful: {e.get('note') or 'not on battery'}")
    return sustained, mj, "; ".join(parts) or None


def _nights(runs: list[RunInfo]) -> dict[str, list[RunInfo]]:
    out: dict[str, list[RunInfo]] = {}
    for run in runs:  # oldest first, so each night's first run comes first
        out.setdefault(run.tag, []).append(run)
    return out


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
