"""Lab trends drawn: the terminal table, the HTML page with one chart per cell.

The series themselves (points, change points, baseline) are harness.measure.series's;
this module only draws them.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from harness.measure.series import Trend, TrendPoint, TrendSeries
from harness.report.page import page
from harness.report.recommend import format_us
from harness.report.svg import esc
from harness.report.trend_chart import TrendMark, trend_chart

_SPARKS = "▁▂▃▄▅▆▇█"


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
