"""Models served at once (--together): each cell's latency alone and beside the others,
as a line (terminal, Markdown) and as an HTML table.

The slowdown shown first is the median of the per-round ratios (harness.measure.
together): each ratio pairs the two windows of one round, moments apart."""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.page import table_section
from harness.report.recommend import format_us

HEADINGS = (
    "model",
    "setting",
    "with",
    "p50 alone",
    "p50 together",
    "slowdown",
    "p99 alone",
    "p99 together",
    "req/s alone",
    "req/s together",
    "rounds",
)


def together_line(r: CellRecord) -> str | None:
    """One line for a cell served with other models, e.g. `digits int8/xnnpack/t1 with
    twin: p50 120 µs alone -> 210 µs together (1.75x, median of 6 rounds), ...`;
    None for any other cell."""
    t = r.extra.get("together")
    if r.status != "ok" or not isinstance(t, dict) or t.get("slowdown") is None:
        return None
    partners = ", ".join(t.get("with") or []) or "its group"
    n = len(t.get("slowdown_rounds") or [])
    what = "p50" if t.get("center", "median") == "median" else "mean"  # aggregate-only
    return (
        f"{r.cell.model} {r.cell.setting} with {partners}: {what} "
        f"{format_us(t['alone_median_us'])} alone -> {format_us(t['median_us'])} together "
        f"({t['slowdown']:.2f}x, median of {n} round{'s' if n != 1 else ''}), p99 "
        f"{format_us(t['alone_p99_us'])} -> {format_us(t['p99_us'])}, "
        f"{t['rate_rps']:.0f} req/s together vs {t['alone_rate_rps']:.0f} alone"
    )


def together_rows(rows: list[CellRecord]) -> list[tuple[str, ...]]:
    """One row of text per ok cell served with others (HEADINGS' columns)."""
    out = []
    for r in rows:
        t = r.extra.get("together")
        if r.status != "ok" or not isinstance(t, dict) or t.get("slowdown") is None:
            continue
        mark = "" if t.get("center", "median") == "median" else " ᵃ"  # a mean, not a p50
        out.append(
            (
                r.cell.model,
                r.cell.setting,
                ", ".join(t.get("with") or []),
                format_us(t["alone_median_us"]) + mark,
                format_us(t["median_us"]) + mark,
                f"{t['slowdown']:.2f}x",
                format_us(t["alone_p99_us"]),
                format_us(t["p99_us"]),
                f"{t['alone_rate_rps']:.0f}",
                f"{t['rate_rps']:.0f}",
                str(len(t.get("slowdown_rounds") or [])),
            )
        )
    return out


def together_section(rows: list[CellRecord]) -> str:
    """A "served together" table of the cells run with --together, or "" when none was."""
    table = together_rows(rows)
    if not table:
        return ""
    note = (
        "each model alone for a window, then all of its group at once for a window of "
        "the same length, every round (one thread each in one process on the Python "
        "runner, one benchmark_model process each on Android); slowdown: the median over "
        "rounds of p50 together / p50 alone; ᵃ: a mean (benchmark_model prints "
        "aggregates only)"
    )
    return table_section("served together", note, HEADINGS, table, "together")
