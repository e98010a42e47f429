"""The SVG trend chart of one cell over runs: median line, CI band, change points, baseline."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from harness.report.recommend import format_us
from harness.report.svg import FONT, empty_chart, esc, linear_ticks, svg_open


@dataclass(frozen=True)
class TrendMark:
    """A vertical marker on a trend chart (a change point or the baseline run)."""

    at: dt.datetime
    kind: str  # "change" | "baseline"
    label: str
    tip: str


def trend_chart(
    times: list[dt.datetime],
    medians: list[float],
    lows: list[float],
    highs: list[float],
    tips: list[str],
    marks: list[TrendMark],
    levels: list[tuple[dt.datetime, dt.datetime, float]],
    title: str,
    width: int = 760,
    height: int = 230,
) -> str:
    """Median per run (points, line) with its CI as a band; change points and baseline."""
    if not times:
        return empty_chart(title, "no ok measurements", width)
    left, right, top, bottom = 70, 20, 26, 40
    pw, ph = width - left - right, height - top - bottom
    t0 = min(times + [m.at for m in marks])
    t1 = max(times + [m.at for m in marks])
    tspan = (t1 - t0).total_seconds() or 1.0
    lo, hi = min(lows + medians), max(highs + medians)
    pad = max((hi - lo) * 0.1, abs(hi) * 0.01, 1e-9)
    lo, hi = max(lo - pad, 0.0), hi + pad

    def sx(t: dt.datetime) -> float:
        if len(times) == 1 and t1 == t0:
            return left + pw / 2
        return left + 10 + (t - t0).total_seconds() / tspan * (pw - 20)

    def sy(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    out = [svg_open(width, height, "trend", title)]
    out.append(f'<text x="{left}" y="16" font-weight="600" {FONT}>{esc(title)}</text>')
    for t in linear_ticks(lo, hi, 4):
        y = sy(t)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>'
            f"{esc(format_us(t))}</text>"
        )
    for t in _time_ticks(t0, t1):
        x = sx(t)
        out.append(
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" {FONT}>'
            f"{esc(_fmt_time(t, t1 - t0))}</text>"
        )
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    band = [f"{sx(t):.1f},{sy(h):.1f}" for t, h in zip(times, highs, strict=True)]
    band += [f"{sx(t):.1f},{sy(v):.1f}" for t, v in reversed(list(zip(times, lows, strict=True)))]
    out.append(
        f'<polygon class="ci-band" points="{" ".join(band)}" fill="#4e79a7" opacity="0.18"/>'
    )
    for a, b, level in levels:
        out.append(
            f'<line class="level" x1="{sx(a):.1f}" y1="{sy(level):.1f}" x2="{sx(b):.1f}" '
            f'y2="{sy(level):.1f}" stroke="#555" stroke-dasharray="4 3"/>'
        )
    line = " ".join(f"{sx(t):.1f},{sy(v):.1f}" for t, v in zip(times, medians, strict=True))
    out.append(f'<polyline points="{line}" fill="none" stroke="#4e79a7" stroke-width="1.5"/>')
    for t, v, tip in zip(times, medians, tips, strict=True):
        out.append(
            f'<g class="pt"><title>{esc(tip)}</title><circle cx="{sx(t):.1f}" cy="{sy(v):.1f}"'
            f' r="3.5" fill="#4e79a7" stroke="#fff"/></g>'
        )
    for m in marks:
        x = sx(m.at)
        colour = "#c00" if m.kind == "change" else "#2a7"
        cls = "change-point" if m.kind == "change" else "baseline"
        dash = "5 3" if m.kind == "change" else "1 3"
        ty = top + 11 if m.kind == "change" else top + ph - 4
        out.append(
            f'<g class="{cls}"><title>{esc(m.tip)}</title><line x1="{x:.1f}" y1="{top}" '
            f'x2="{x:.1f}" y2="{top + ph}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="{dash}"/><text x="{x + 3:.1f}" y="{ty}" '
            f'fill="{colour}" {FONT}>{esc(m.label)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _time_ticks(t0: dt.datetime, t1: dt.datetime, count: int = 5) -> list[dt.datetime]:
    if t1 == t0:
        return [t0]
    step = (t1 - t0) / (count - 1)
    return [t0 + step * i for i in range(count)]


def _fmt_time(t: dt.datetime, span: dt.timedelta) -> str:
    if span >= dt.timedelta(days=2):
        return t.strftime("%m-%d")
    if span >= dt.timedelta(hours=2):
        return t.strftime("%m-%d %H:%M")
    return t.strftime("%H:%M:%S")
