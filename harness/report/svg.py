"""Inline SVG charts, written as strings: no plotting library, no JavaScript needed.

Every chart is a pure function of plain values returning one ``<svg>`` element.
Every string that reaches the markup goes through ``esc`` (model names can be
hostile). Hover text is an SVG ``<title>`` (the browser's own tooltip; the page's
script upgrades it to a styled one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.report.recommend import format_us

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f")
DELEGATE_COLOURS = {
    "cpu": "#4e79a7",
    "xnnpack": "#f28e2b",
    "gpu": "#59a14f",
    "gpu-f32": "#76b7b2",
    "nnapi": "#e15759",
    "npu": "#b07aa1",
}
SHAPES = ("circle", "square", "triangle", "diamond", "down", "plus", "cross")
VARIANT_SHAPES = {"fp32": "circle", "fp16": "square", "dynamic": "triangle", "int8": "diamond"}
FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def esc(value) -> str:
    """Text or attribute value, escaped (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


@dataclass(frozen=True)
class ScatterPoint:
    """One ok cell on the latency/accuracy plane."""

    ident: str  # ties the point to its table row (data-cell)
    latency_us: float
    ci_low: float
    ci_high: float
    accuracy: float | None
    colour_key: str  # delegate
    shape_key: str  # variant
    tip: str  # every figure, one per line
    on_front: bool = False
    picked: bool = False


def colour_map(keys: Sequence[str]) -> dict[str, str]:
    """Stable colours: the known delegates keep theirs, others take the palette in order."""
    out, spare = {}, [c for c in PALETTE if c not in DELEGATE_COLOURS.values()] + list(PALETTE)
    for k in dict.fromkeys(keys):
        out[k] = DELEGATE_COLOURS.get(k) or spare[len(out) % len(spare)]
    return out


def shape_map(keys: Sequence[str]) -> dict[str, str]:
    out, spare = {}, [s for s in SHAPES if s not in VARIANT_SHAPES.values()] + list(SHAPES)
    for k in dict.fromkeys(keys):
        out[k] = VARIANT_SHAPES.get(k) or spare[len(out) % len(spare)]
    return out


def marker(shape: str, x: float, y: float, r: float, fill: str) -> str:
    """One marker of ``shape`` centred on (x, y)."""
    a = f'fill="{fill}" stroke="#222" stroke-width="0.8"'
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {a}/>'
    if shape == "square":
        s = r * 0.9
        w = 2 * s
        return f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{w:.1f}" height="{w:.1f}" {a}/>'
    pts = {
        "triangle": [(0, -1.2), (1.1, 0.8), (-1.1, 0.8)],
        "down": [(0, 1.2), (1.1, -0.8), (-1.1, -0.8)],
        "diamond": [(0, -1.25), (1.1, 0), (0, 1.25), (-1.1, 0)],
        "plus": _cross_points(0.35),
        "cross": [(px * 0.7 - py * 0.7, px * 0.7 + py * 0.7) for px, py in _cross_points(0.35)],
    }[shape]
    d = " ".join(f"{x + px * r:.1f},{y + py * r:.1f}" for px, py in pts)
    return f'<polygon points="{d}" {a}/>'


def _cross_points(w: float) -> list[tuple[float, float]]:
    return [
        (-w, -1.2), (w, -1.2), (w, -w), (1.2, -w), (1.2, w), (w, w),
        (w, 1.2), (-w, 1.2), (-w, w), (-1.2, w), (-1.2, -w), (-w, -w),
    ]  # fmt: skip


# -- scales -------------------------------------------------------------------------


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering [lo, hi] (lo > 0)."""
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks or [lo, hi]


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-number ticks within [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:.10g}"


# -- latency vs accuracy scatter ----------------------------------------------------


def scatter_chart(
    points: list[ScatterPoint],
    title: str,
    budget_us: float | None = None,
    budget_label: str = "",
    width: int = 760,
    height: int = 380,
    y_label: str = "accuracy (top-1)",
) -> str:
    """Steady-state latency (log x, with CI bars) vs the primary metric (y, labelled
    `y_label`); front as a step line."""
    if not points:
        return empty_chart(title, "no ok cells to plot", width)
    left, right, top, bottom = 64, 150, 28, 46
    has_na = any(p.accuracy is None for p in points)
    na_band = 34 if has_na else 0
    pw, ph = width - left - right, height - top - bottom - na_band
    lats = [p.ci_low for p in points] + [p.ci_high for p in points]
    lats += [p.latency_us for p in points] + ([budget_us] if budget_us else [])
    lo, hi = min(v for v in lats if v > 0) / 1.3, max(lats) * 1.3
    accs = [p.accuracy for p in points if p.accuracy is not None]
    alo, ahi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    pad = max((ahi - alo) * 0.12, 0.005)
    alo, ahi = alo - pad, ahi + pad

    def sx(v: float) -> float:
        return left + (math.log10(max(v, lo)) - math.log10(lo)) / math.log10(hi / lo) * pw

    def sy(a: float | None) -> float:
        if a is None:
            return top + ph + na_band / 2 + 4
        return top + ph - (a - alo) / ((ahi - alo) or 1.0) * ph

    out = [svg_open(width, height, "scatter", title)]
    out.append(f'<text x="{left}" y="16" font-weight="600" {FONT}>{esc(title)}</text>')
    for t in log_ticks(lo, hi):
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph + na_band}" '
            f'stroke="#e5e5e5"/><text x="{x:.1f}" y="{top + ph + na_band + 14}" '
            f'text-anchor="middle" {FONT}>{esc(format_us(t))}</text>'
        )
    for t in linear_ticks(alo, ahi, 5) if accs else []:
        y = sy(t)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_fmt_tick(t)}</text>'
        )
    if has_na:
        y = top + ph
        out.append(
            f'<rect x="{left}" y="{y}" width="{pw}" height="{na_band}" fill="#f6f6f6"/>'
            f'<text x="{left - 6}" y="{y + na_band / 2 + 8:.1f}" text-anchor="end" '
            f"{FONT}>no acc.</text>"
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph + na_band}" fill="none" '
        f'stroke="#999"/>'
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" {FONT}>'
        f"steady-state median latency (log scale; bars: 95% CI)</text>"
        f'<text transform="translate(14 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
        f"{FONT}>{esc(y_label)}</text>"
    )
    front = sorted((p for p in points if p.on_front), key=lambda p: p.latency_us)
    if front:
        d = f"M{sx(front[0].latency_us):.1f},{sy(front[0].accuracy):.1f}"
        for p in front[1:]:
            d += f" H{sx(p.latency_us):.1f} V{sy(p.accuracy):.1f}"
        d += f" H{left + pw}"
        out.append(
            f'<path class="front" d="{d}" fill="none" stroke="#333" stroke-width="1.2" '
            f'stroke-dasharray="5 3"><title>Pareto front</title></path>'
        )
    if budget_us:
        x = sx(budget_us)
        out.append(
            f'<line class="budget" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph + na_band}"'
            f' stroke="#c00" stroke-width="1.2" stroke-dasharray="2 3"/>'
            f'<text x="{x + 3:.1f}" y="{top + 10}" fill="#c00" {FONT}>{esc(budget_label)}</text>'
        )
    colours = colour_map([p.colour_key for p in points])
    shapes = shape_map([p.shape_key for p in points])
    for p in sorted(points, key=lambda p: p.on_front):  # front points drawn last, on top
        x, y = sx(p.latency_us), sy(p.accuracy)
        ring = (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="11" fill="none" stroke="#c00" stroke-width="2"/>'
            if p.picked
            else ""
        )
        out.append(
            f'<g class="pt" data-cell="{esc(p.ident)}" tabindex="0"><title>{esc(p.tip)}</title>'
            f'<line x1="{sx(p.ci_low):.1f}" y1="{y:.1f}" x2="{sx(p.ci_high):.1f}" y2="{y:.1f}" '
            f'stroke="{colours[p.colour_key]}" stroke-width="2"/>{ring}'
            f"{marker(shapes[p.shape_key], x, y, 6, colours[p.colour_key])}</g>"
        )
    out.append(_legend(left + pw + 14, top, colours, shapes, bool(front), bool(budget_us)))
    out.append("</svg>")
    return "".join(out)


def _legend(x: float, y: float, colours, shapes, front: bool, budget: bool) -> str:
    out = [f'<g class="legend" {FONT}>']
    out.append(f'<text x="{x}" y="{y + 4}" font-weight="600">delegate</text>')
    y += 18
    for k, c in colours.items():
        out.append(
            f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{c}"/>'
            f'<text x="{x + 18}" y="{y + 1}">{esc(k)}</text>'
        )
        y += 16
    y += 8
    out.append(f'<text x="{x}" y="{y + 4}" font-weight="600">variant</text>')
    y += 18
    for k, s in shapes.items():
        out.append(marker(s, x + 6, y - 3, 5, "#bbb"))
        out.append(f'<text x="{x + 18}" y="{y + 1}">{esc(k)}</text>')
        y += 16
    if front:
        y += 6
        out.append(
            f'<path d="M{x},{y - 3} H{x + 12}" stroke="#333" stroke-dasharray="5 3"/>'
            f'<text x="{x + 18}" y="{y + 1}">Pareto front</text>'
        )
        y += 16
    if budget:
        out.append(
            f'<path d="M{x + 6},{y - 10} V{y + 3}" stroke="#c00" stroke-dasharray="2 3"/>'
            f'<text x="{x + 18}" y="{y + 1}">budget; ring = pick</text>'
        )
    out.append("</g>")
    return "".join(out)


# -- service-latency breakdown ------------------------------------------------------


@dataclass(frozen=True)
class BreakdownRow:
    """One ok cell's service latencies (µs); None where not measured."""

    ident: str
    label: str
    init_us: float | None
    first_us: float | None
    p50_us: float
    p99_us: float | None  # None: aggregate-only (benchmark_model printed no p99)
    e2e_us: float | None


BREAKDOWN_COLOURS = {
    "init": "#9c755f",
    "first": "#edc948",
    "p50": "#4e79a7",
    "copies": "#a0cbe8",
    "p99": "#e15759",
}


def breakdown_chart(rows: list[BreakdownRow], title: str, width: int = 760) -> str:
    """Two stacked horizontal bars per cell, each panel on its own linear scale.

    Cold start: init (load + delegate + allocate) then the first inference.
    Per request: steady-state p50, then the input/output copies (end-to-end median
    minus p50), with a whisker to p99.
    """
    if not rows:
        return empty_chart(title, "no ok cells", width)
    label_w, gap, row_h, top = 150, 24, 20, 50
    cold_w = (width - label_w - gap - 10) * 0.4
    req_w = (width - label_w - gap - 10) - cold_w
    height = top + row_h * len(rows) + 34
    cold_max = max(((r.init_us or 0) + (r.first_us or 0)) for r in rows) or 1.0
    # the tail must not squash the bars: p99 beyond the widest bar is clipped (marked »)
    req_max = max(max(r.e2e_us or 0, r.p50_us) for r in rows) * 1.25 or 1.0
    x0, x1 = label_w, label_w + cold_w + gap
    span, rspan = cold_w - 56, req_w - 150  # leave room for the value text

    out = [svg_open(width, height, "breakdown", title)]
    out.append(f'<text x="4" y="14" font-weight="600" {FONT}>{esc(title)}</text>')
    out.append(
        f'<text x="{x0}" y="{top - 18}" font-weight="600" {FONT}>cold start</text>'
        f'<text x="{x0}" y="{top - 5}" {FONT}>{_key("init")} init + '
        f"{_key('first')} first inference</text>"
        f'<text x="{x1}" y="{top - 18}" font-weight="600" {FONT}>per request</text>'
        f'<text x="{x1}" y="{top - 5}" {FONT}>{_key("p50")} steady p50 + '
        f"{_key('copies')} I/O copies (e2e) "
        f'<tspan fill="{BREAKDOWN_COLOURS["p99"]}">├</tspan> p99</text>'
    )
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(
            f'<g class="bar" data-cell="{esc(r.ident)}"><title>{esc(_breakdown_tip(r))}</title>'
            f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end" {FONT}>{esc(r.label)}</text>'
        )
        init, first = r.init_us or 0.0, r.first_us or 0.0
        out.append(_hbar(x0, y, init / cold_max * span, "init"))
        out.append(_hbar(x0 + init / cold_max * span, y, first / cold_max * span, "first"))
        cold = init + first
        out.append(
            f'<text x="{x0 + cold / cold_max * span + 4:.1f}" y="{y + 13}" {FONT}>'
            f"{esc(format_us(cold) if cold else '-')}</text>"
        )
        p50w = r.p50_us / req_max * rspan
        out.append(_hbar(x1, y, p50w, "p50"))
        if r.e2e_us and r.e2e_us > r.p50_us:
            out.append(_hbar(x1 + p50w, y, (r.e2e_us - r.p50_us) / req_max * rspan, "copies"))
        p99 = r.p99_us if r.p99_us is not None else r.p50_us
        clipped = p99 > req_max
        xp99 = x1 + min(p99, req_max) / req_max * rspan
        tick = f" M{xp99:.1f},{y + 4} V{y + 14}" if not clipped else ""
        out.append(
            f'<path d="M{x1 + p50w:.1f},{y + 9} H{xp99:.1f}{tick}" '
            f'stroke="{BREAKDOWN_COLOURS["p99"]}" stroke-width="1.5" fill="none"/>'
        )
        end = max(xp99, x1 + (max(r.e2e_us or 0, r.p50_us)) / req_max * rspan)
        text = format_us(r.p50_us) + (f" (p99 {format_us(r.p99_us)} »)" if clipped else "")
        out.append(f'<text x="{end + 4:.1f}" y="{y + 13}" {FONT}>{esc(text)}</text></g>')
    yb = top + row_h * len(rows) + 4
    for xa, mx, w in ((x0, cold_max, span), (x1, req_max, rspan)):
        out.append(f'<line x1="{xa}" y1="{yb}" x2="{xa + w}" y2="{yb}" stroke="#999"/>')
        for t in linear_ticks(0, mx, 3):
            xt = xa + t / mx * w
            out.append(
                f'<line x1="{xt:.1f}" y1="{yb}" x2="{xt:.1f}" y2="{yb + 4}" stroke="#999"/>'
                f'<text x="{xt:.1f}" y="{yb + 16}" text-anchor="middle" {FONT}>'
                f"{esc(format_us(t) if t else '0')}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _key(part: str) -> str:
    return f'<tspan fill="{BREAKDOWN_COLOURS[part]}">■</tspan>'


def _hbar(x: float, y: float, w: float, part: str) -> str:
    if w <= 0:
        return ""
    return (
        f'<rect class="seg-{part}" x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" '
        f'height="13" fill="{BREAKDOWN_COLOURS[part]}"/>'
    )


def _breakdown_tip(r: BreakdownRow) -> str:
    return "\n".join(
        [
            r.label,
            f"init (load + delegate + allocate): {format_us(r.init_us)}",
            f"first inference (cold): {format_us(r.first_us)}",
            f"steady p50: {format_us(r.p50_us)}",
            f"steady p99: {format_us(r.p99_us)}",
            f"end-to-end median (with I/O copies): {format_us(r.e2e_us)}",
        ]
    )


# -- helpers ------------------------------------------------------------------------


def svg_open(width: float, height: float, kind: str, title: str) -> str:
    return (
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height:.0f}" viewBox="0 0 {width} {height:.0f}" role="img" '
        f'aria-label="{esc(title)}">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
    )


def empty_chart(title: str, message: str, width: int) -> str:
    return (
        f"{svg_open(width, 60, 'empty', title)}"
        f'<text x="4" y="16" font-weight="600" {FONT}>{esc(title)}</text>'
        f'<text x="4" y="40" fill="#777" {FONT}>{esc(message)}</text></svg>'
    )
