"""`harness compare` output: a terminal table, Markdown, and the JSON document.

The statistics live in harness.measure.compare; this module only formats them.
"""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.measure.compare import CellComparison, Comparison

COMPARE_SCHEMA = 1
_STYLE = {
    "slower": "bold red",
    "accuracy down": "bold red",
    "faster": "green",
    "failed": "yellow",
    "unsupported": "dim",
    "new": "cyan",
    "missing": "cyan",
}


def comparison_document(result: Comparison) -> dict:
    """The `--json` contract (schema 1): fields are added, never renamed or removed."""
    return _json_safe(
        {
            "schema": COMPARE_SCHEMA,
            "baseline": result.baseline_id,
            "candidate": result.candidate_id,
            "config": result.config.to_dict(),
            "regression": bool(result.regressions),
            "counts": result.counts(),
            "cells": [c.to_dict() for c in result.cells],
        }
    )


def _json_safe(v):
    """NaN and infinities are not JSON: they become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    return v


def render_comparison(result: Comparison, out: Console | None = None) -> None:
    """One table per (device, model); colour only when stdout is a terminal."""
    out = out or Console(highlight=False)
    for (device, model), cells in _groups(result).items():
        table = Table(
            title=f"{device} · {model}: {result.baseline_id} -> {result.candidate_id}",
            title_justify="left",
            caption=_caption(result),
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1, 0, 0),
            show_edge=False,
        )
        # 80 columns leave no room for the shift: it is in the caption's rule, the
        # Markdown, the JSON, and a note whenever it disagrees with the median
        for col in ("cell", "base", "cand", "change [CI]", "p", "acc", "verdict"):
            table.add_column(
                col,
                justify="left" if col in ("cell", "verdict") else "right",
                no_wrap=col not in ("cell", "change [CI]"),
            )
        for c in cells:
            style = _STYLE.get(c.verdict)
            verdict = escape(c.verdict)
            label, base, cand, change, _shift, p, acc = _figures(c)
            table.add_row(
                *(escape(v) for v in (label, base, cand, change, p, acc)),
                f"[{style}]{verdict}[/]" if style else verdict,
            )
        out.print(table)
        for c in cells:
            if c.note:
                out.print(f"  {_label(c)}: {c.note}", markup=False, highlight=False)
    out.print(_summary(result), markup=False)


def render_markdown(result: Comparison) -> str:
    """GitHub-flavoured Markdown: a summary line, one table, then the notes."""
    lines = [
        f"**harness compare** `{result.baseline_id}` → `{result.candidate_id}`: {_summary(result)}",
        "",
        "| device | model | cell | baseline µs | candidate µs | change [CI] | shift | p "
        "| Δ acc | verdict |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for c in result.cells:
        label, base, cand, change, shift, p, acc = _figures(c)
        verdict = f"**{c.verdict}**" if c.is_regression else c.verdict
        row = (c.cell.device, c.cell.model, label, base, cand, change, shift, p, acc, verdict)
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    notes = [f"- `{_md_cell(_full_label(c))}`: {_md_cell(c.note)}" for c in result.cells if c.note]
    if notes:
        lines += ["", *notes]
    lines += ["", _caption(result)]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _groups(result: Comparison) -> dict[tuple[str, str], list[CellComparison]]:
    groups: dict[tuple[str, str], list[CellComparison]] = {}
    for c in result.cells:
        groups.setdefault((c.cell.device, c.cell.model), []).append(c)
    return groups


def _figures(c: CellComparison) -> tuple[str, str, str, str, str, str, str]:
    """label, baseline, candidate, change [CI], shift, p, accuracy change."""
    lat, acc = c.latency, c.accuracy
    acc_text = "" if acc is None else "0pp" if acc.change_pp == 0 else f"{acc.change_pp:+.1f}pp"
    if lat is None:
        return _label(c), "", "", "", "", "", acc_text
    mark = "" if lat.statistic == "median" else "ᵃ"  # aggregate-only: means, not medians
    ci = ""
    if math.isfinite(lat.ci_low) and math.isfinite(lat.ci_high):
        ci = f" [{_pct(lat.ci_low)}, {_pct(lat.ci_high)}]"
    return (
        _label(c),
        _us(lat.baseline) + mark,
        _us(lat.candidate) + mark,
        f"{_pct(lat.change)}%{ci}" if math.isfinite(lat.change) else "-",
        f"{_pct(lat.shift)}%" if math.isfinite(lat.shift) else "-",
        _p(lat.p_value),
        acc_text,
    )


def _label(c: CellComparison) -> str:
    return f"{c.cell.variant}/{c.cell.delegate}/t{c.cell.threads}"


def _full_label(c: CellComparison) -> str:
    return f"{c.cell.device}/{c.cell.model}/{_label(c)}"


def _caption(result: Comparison) -> str:
    cfg = result.config
    return (
        f"base/cand: median µs; change of the median, "
        f"{100 * (1 - cfg.alpha):g}% bootstrap CI; Mann-Whitney p; verdict needs "
        f"p < {cfg.alpha:g} and the typical sample's shift (Hodges-Lehmann) beyond "
        f"{100 * cfg.latency_threshold:g}%; accuracy down = drop > "
        f"{cfg.accuracy_threshold_pp:g} pp; ᵃ = aggregate-only (means, Welch's t)"
    )


def _summary(result: Comparison) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items()) or "no cells"
    verdict = "REGRESSION" if result.regressions else "no regression"
    return f"{verdict} ({counts})"


def _pct(v: float) -> str:
    x = 100 * v
    return f"{x:+.1f}" if abs(x) < 9.95 else f"{x:+.0f}"


def _us(v: float) -> str:
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.0e}" if p < 0.001 else f"{p:.3f}"
