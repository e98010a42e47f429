"""Sustained cells in the report: latency, CPU frequency and temperature over time (SVG),
and one line naming the throttling onset and the steady-state ratio.

A device without cpufreq or thermal files says so under the chart; the latency series
is drawn regardless.
"""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.recommend import format_us
from harness.report.svg import FONT, esc, linear_ticks, svg_open

WIDTH, PANEL_H, LEFT, RIGHT, GAP = 760, 110, 64, 16, 26


def sustained_line(r: CellRecord) -> str | None:
    """`fp32/xnnpack/t1 sustained 300 s: throttling from 42 s (+31 %), steady state 1.28x
    the first 10 s` (plus what the device lacks), or None for other cells."""
    s = r.extra.get("sustained")
    if not isinstance(s, dict):
        return None
    onset, ratio = s.get("onset"), s.get("steady_ratio")
    head = f"{r.cell.model} {r.cell.setting} sustained {s.get('duration_s', 0):g} s: "
    if onset:
        head += f"throttling from {onset['t_s']:.0f} s ({onset['change']:+.0%}), "
    else:
        head += "no throttling onset, "
    head += f"steady state {ratio:.2f}x the first 10 s" if ratio else "no steady-state ratio"
    if s.get("missing"):
        head += f"; this device has no {' or '.join(s['missing'])} (not drawn)"
    return head


def sustained_section(rows: list[CellRecord]) -> str:
    """One figure per sustained ok cell, or "" when the run had none."""
    parts = []
    for r in rows:
        s = r.extra.get("sustained")
        if r.status == "ok" and isinstance(s, dict) and s.get("windows"):
            parts.append(f"<figure>{sustained_chart(r)}<figcaption>{esc(sustained_line(r))}"
                         "</figcaption></figure>")  # fmt: skip
    return "<h3>sustained</h3>" + "".join(parts) if parts else ""


def sustained_chart(r: CellRecord) -> str:
    """Stacked panels over one time axis: window median latency, mean CPU frequency,
    hottest zone; a dashed line at the throttling onset."""
    s = r.extra["sustained"]
    ws = s["windows"]
    t = [w["t_s"] for w in ws]
    series = [("median latency", [w["median_us"] for w in ws], format_us)]
    freqs = [_mean(w.get("freq_khz")) for w in ws]
    if any(f is not None for f in freqs):
        series.append(("mean CPU frequency", freqs, lambda v: f"{v / 1e6:.2f} GHz"))
    temps = [w.get("temp_c") for w in ws]
    if any(v is not None for v in temps):
        series.append(("hottest zone", temps, lambda v: f"{v:.1f} °C"))
    height = len(series) * (PANEL_H + GAP) + 24
    title = f"{r.cell.model} {r.cell.setting}: sustained"
    out = [svg_open(WIDTH, height, "sustained", title)]
    t_hi = max(t[-1], 1e-9)
    x = lambda v: LEFT + (WIDTH - LEFT - RIGHT) * v / t_hi  # noqa: E731
    for k, (name, ys, fmt) in enumerate(series):
        top = k * (PANEL_H + GAP) + 18
        out.append(_panel(name, t, ys, fmt, top, x))
    onset = s.get("onset")
    if onset:
        ox = x(onset["t_s"])
        out.append(
            f'<line x1="{ox:.1f}" y1="14" x2="{ox:.1f}" y2="{height - 24}" stroke="#c0392b" '
            f'stroke-dasharray="4 3"><title>throttling from {onset["t_s"]:.0f} s</title></line>'
        )
    for v in linear_ticks(0, t_hi):
        out.append(
            f'<text x="{x(v):.1f}" y="{height - 6}" text-anchor="middle" {FONT}>{v:g} s</text>'
        )
    return "".join(out) + "</svg>"


def _panel(name: str, t: list[float], ys: list, fmt, top: float, x) -> str:
    known = [v for v in ys if v is not None]
    lo, hi = min(known), max(known)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    y = lambda v: top + PANEL_H - PANEL_H * (v - lo) / (hi - lo)  # noqa: E731
    points = " ".join(
        f"{x(ti):.1f},{y(v):.1f}" for ti, v in zip(t, ys, strict=True) if v is not None
    )
    return (
        f'<text x="{LEFT}" y="{top - 4}" font-weight="600" {FONT}>{esc(name)}</text>'
        f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PANEL_H}" '
        'fill="none" stroke="#ddd"/>'
        f'<text x="{LEFT - 4}" y="{top + 10}" text-anchor="end" {FONT}>{esc(fmt(hi))}</text>'
        f'<text x="{LEFT - 4}" y="{top + PANEL_H}" text-anchor="end" {FONT}>{esc(fmt(lo))}</text>'
        f'<polyline points="{points}" fill="none" stroke="#2c6fbb" stroke-width="1.5"/>'
    )


def _mean(values) -> float | None:
    known = [v for v in values or [] if isinstance(v, int | float)]
    return sum(known) / len(known) if known else None
