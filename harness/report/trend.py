"""Lab trends: one cell's steady-state median over many runs, its change points and baseline.

Reads the store (runs of one model on one device), computes nothing the store keeps
except the change points (harness.measure.steps), and renders the terminal table,
the HTML page and the JSON document.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table

from harness.cells import CellRecord, LatencyStats
from harness.errors import HarnessError
from harness.measure.stats import Z_95
from harness.measure.steps import Step, detect_steps
from harness.report.page import page
from harness.report.recommend import format_us
from harness.report.svg import esc
from harness.report.trend_chart import TrendMark, trend_chart
from harness.store.store import RunInfo, Store

BASELINE_TAG = "baseline"
SCAN_RUNS = 2000  # how far back to look for runs of the model on the device
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class TrendPoint:
    """One run's figure for one cell."""

    run_id: str
    at: dt.datetime
    status: str
    median: float | None
    ci_low: float | None
    ci_high: float | None
    accuracy: float | None

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "status": self.status,
            "median_us": self.median,
            "ci_low_us": self.ci_low,
            "ci_high_us": self.ci_high,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class TrendSeries:
    """A cell (variant, delegate, threads) across runs, oldest first."""

    variant: str
    delegate: str
    threads: int
    points: tuple[TrendPoint, ...]
    steps: tuple[Step, ...]  # indices into ok_points

    @property
    def label(self) -> str:
        return f"{self.variant} {self.delegate} t{self.threads}"

    @property
    def ok_points(self) -> list[TrendPoint]:
        return [p for p in self.points if p.median is not None]

    def step_runs(self) -> list[tuple[Step, TrendPoint]]:
        """Each change point with the first run at its new level."""
        ok = self.ok_points
        return [(s, ok[s.index]) for s in self.steps]

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "delegate": self.delegate,
            "threads": self.threads,
            "points": [p.to_dict() for p in self.points],
            "change_points": [
                s.to_dict() | {"run_id": p.run_id, "at": p.at.isoformat()}
                for s, p in self.step_runs()
            ],
        }


@dataclass(frozen=True)
class Trend:
    model: str
    device: str
    runs: tuple[RunInfo, ...]  # oldest first
    baseline: str | None
    series: tuple[TrendSeries, ...]

    def run(self, run_id: str) -> RunInfo | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "device": self.device,
            "runs": [{"run_id": r.run_id, "at": r.created_at.isoformat()} for r in self.runs],
            "baseline": self.baseline,
            "series": [s.to_dict() for s in self.series],
        }


def load_trend(
    store: Store, model: str, device: str, last: int = 30, baseline: str | None = None
) -> Trend:
    """The last ``last`` runs of ``model`` on ``device``, every cell as a series.

    Baseline: ``baseline`` when given (added to the window if older), else the newest
    run tagged "baseline" in the window, else the oldest run in the window.
    """
    if last < 2:
        raise HarnessError("--last must be at least 2 for a trend")
    found: list[tuple[RunInfo, list[CellRecord]]] = []
    for run in store.list_runs(limit=SCAN_RUNS):
        cells = matching_cells(store, run.run_id, model, device)
        if cells:
            found.append((run, cells))
            if len(found) == last:
                break
    if not found:
        raise HarnessError(f"no runs of model {model!r} on device {device!r} in {store.url}")
    if baseline and all(run.run_id != baseline for run, _ in found):
        base_run = store.get_run(baseline)
        cells = matching_cells(store, baseline, model, device)
        if not cells:
            raise HarnessError(f"baseline run {baseline!r} has no {model!r} cells on {device!r}")
        found.append((base_run, cells))
    found.sort(key=lambda rc: rc[0].created_at)
    if baseline is None:
        tagged = [run.run_id for run, _ in found if run.tag == BASELINE_TAG]
        baseline = tagged[-1] if tagged else found[0][0].run_id
    return Trend(
        model=model,
        device=device,
        runs=tuple(run for run, _ in found),
        baseline=baseline,
        series=tuple(cell_series(found)),
    )


def matching_cells(store: Store, run_id: str, model: str, device: str) -> list[CellRecord]:
    return [r for r in store.cells(run_id) if r.cell.model == model and r.cell.device == device]


def cell_series(
    found: Iterable[tuple[RunInfo, list[CellRecord]]],
    figure: Callable[[LatencyStats], float | None] = lambda lat: lat.median,
) -> list[TrendSeries]:
    """Each cell (variant, delegate, threads) of ``found`` (runs oldest first, each with
    its cells) as a series: ``figure`` of every ok cell's latency, and its change points
    (harness.measure.steps, the CI's half-width as each run's noise)."""
    points: dict[tuple, list[TrendPoint]] = {}
    for run, cells in found:
        for r in cells:
            c, lat = r.cell, r.latency if r.status == "ok" else None
            points.setdefault((c.variant, c.delegate, c.threads), []).append(
                TrendPoint(
                    run_id=run.run_id,
                    at=run.created_at,
                    status=r.status,
                    median=figure(lat) if lat else None,
                    ci_low=lat.ci_low if lat else None,
                    ci_high=lat.ci_high if lat else None,
                    accuracy=r.accuracy,
                )
            )
    return [TrendSeries(*key, tuple(pts), _steps(pts)) for key, pts in points.items()]


def _steps(points: list[TrendPoint]) -> tuple[Step, ...]:
    ok = [p for p in points if p.median is not None]
    noise = [
        (p.ci_high - p.ci_low) / (2 * Z_95)
        for p in ok
        if p.ci_high is not None and p.ci_low is not None
    ]
    return tuple(detect_steps([p.median for p in ok], noise))


# -- rendering ----------------------------------------------------------------------


def series_chart(trend: Trend, s: TrendSeries) -> str:
    """The SVG trend chart of one series."""
    ok = s.ok_points
    marks = [
        TrendMark(
            at=p.at,
            kind="change",
            label=f"{st.change:+.1%}",
            tip=f"change point: {format_us(st.before)} → {format_us(st.after)} "
            f"({st.change:+.1%}) from run {p.run_id} ({p.at:%Y-%m-%d %H:%M})",
        )
        for st, p in s.step_runs()
    ]
    if base := trend.run(trend.baseline or ""):
        marks.append(
            TrendMark(base.created_at, "baseline", "baseline", f"baseline run {base.run_id}")
        )
    bounds = [0, *(st.index for st in s.steps), len(ok)]
    levels = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if b > a:
            level = s.steps[i - 1].after if i else (s.steps[0].before if s.steps else None)
            if level is not None:
                levels.append((ok[a].at, ok[b - 1].at, level))
    return trend_chart(
        times=[p.at for p in ok],
        medians=[p.median for p in ok],
        lows=[p.ci_low for p in ok],
        highs=[p.ci_high for p in ok],
        tips=[_point_tip(p) for p in ok],
        marks=marks,
        levels=levels,
        title=f"{trend.model} · {trend.device} · {s.label}: steady-state median",
    )


def _point_tip(p: TrendPoint) -> str:
    acc = "" if p.accuracy is None else f"\naccuracy {p.accuracy:.4f}"
    return (
        f"run {p.run_id}\n{p.at:%Y-%m-%d %H:%M:%S} UTC\nmedian {format_us(p.median)} "
        f"(95% CI {format_us(p.ci_low)} – {format_us(p.ci_high)}){acc}"
    )


def trend_charts(trend: Trend) -> list[str]:
    return [series_chart(trend, s) for s in trend.series]


def trend_html(trend: Trend) -> str:
    """A page with one trend chart per cell and a table of the change points."""
    base = trend.run(trend.baseline or "")
    facts = [
        ("model", trend.model),
        ("device", trend.device),
        ("runs", f"{len(trend.runs)}: {trend.runs[0].created_at:%Y-%m-%d %H:%M} … "
                 f"{trend.runs[-1].created_at:%Y-%m-%d %H:%M} UTC"),
        ("baseline", f"{base.run_id} ({base.created_at:%Y-%m-%d %H:%M})" if base else "-"),
    ]  # fmt: skip
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    rows = "".join(
        f"<tr><td>{esc(s.label)}</td><td>{esc(p.run_id)}</td><td>{p.at:%Y-%m-%d %H:%M}</td>"
        f"<td data-v='{st.before}'>{esc(format_us(st.before))}</td>"
        f"<td data-v='{st.after}'>{esc(format_us(st.after))}</td>"
        f"<td data-v='{st.change}'>{st.change:+.1%}</td></tr>"
        for s in trend.series
        for st, p in s.step_runs()
    )
    table = (
        "<table class='sortable changes'><thead><tr><th>cell</th><th>first run at new level"
        "</th><th>when</th><th>before</th><th>after</th><th>change</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>No change points in this window.</p>"
    )
    charts = "".join(f"<figure>{c}</figure>" for c in trend_charts(trend))
    body = (
        f"<header><h1>harness trend</h1><dl class='facts'>{dl}</dl></header>"
        f"<h2>change points</h2>{table}<h2>cells</h2>{charts}"
    )
    return page(f"harness trend · {trend.model} · {trend.device}", body)


def render_trend(trend: Trend, out: Console) -> None:
    """Terminal: one row per cell with a sparkline of the last runs (fits 80 columns)."""
    table = Table(
        title=f"{trend.model} · {trend.device} · {len(trend.runs)} runs "
        f"(baseline {trend.baseline})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col, justify in (("cell", "left"), ("runs", "right"), ("last", "right"),
                         ("trend", "left"), ("change points", "left")):  # fmt: skip
        table.add_column(col, justify=justify, no_wrap=col != "change points")
    for s in trend.series:
        ok = s.ok_points
        changes = ", ".join(f"{st.change:+.0%} @{p.at:%m-%d}" for st, p in s.step_runs())
        table.add_row(
            s.label,
            str(len(ok)),
            format_us(ok[-1].median) if ok else "-",
            sparkline([p.median for p in ok][-16:]),
            changes or "-",
        )
    out.print(table)


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return _SPARKS[3] * len(values)
    return "".join(_SPARKS[round((v - lo) / (hi - lo) * (len(_SPARKS) - 1))] for v in values)
