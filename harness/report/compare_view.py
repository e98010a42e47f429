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

COMPARE_SCHEMA = 2  # 2: verdicts on rounds, "inconclusive", round fields in "latency"
_STYLE = {
    "slower": "bold red",
    "accuracy down": "bold red",
    "throughput down": "bold red",
    "energy up": "bold red",
    "inconclusive": "magenta",
    "faster": "green",
    "failed": "yellow",
    "unsupported": "dim",
    "new": "cyan",
    "missing": "cyan",
}


def comparison_document(result: Comparison) -> dict:
    """The `--json` contract (schema 2): fields are added, never renamed or removed."""
    return _json_safe(
        {
            "schema": COMPARE_SCHEMA,
            "baseline": result.baseline_id,
            "candidate": result.candidate_id,
            "config": result.config.to_dict(),
            "paired": result.paired,
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
    extra = _extra_columns(result)
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
        # 80 columns leave no room for the pooled diagnostics: they are in the Markdown
        # and the JSON
        short = {"throughput": "tput", "energy": "energy"}
        # the throughput/energy columns take the accuracy column's room where no cell
        # has an accuracy (a load sweep, usually): a plain comparison keeps all of its
        acc_col = not extra or any(c.accuracy is not None for c in result.cells)
        fixed = ("cell", "base", "cand", "change [CI]", "rnd", *(("acc",) if acc_col else ()))
        cols = (*fixed, *(short[e] for e in extra))
        for col in (*cols, "verdict"):
            table.add_column(
                col,
                justify="left" if col in ("cell", "verdict") else "right",
                no_wrap=col not in ("cell", "change [CI]", "tput", "energy"),
                # with the extra columns a long cell name (…/c2) folds rather than lose
                # its concurrency to an ellipsis
                overflow="fold" if col == "cell" and extra else "ellipsis",
            )
        for c in cells:
            style = _STYLE.get(c.verdict)
            verdict = escape(c.verdict)
            label, base, cand, change, _shift, _p, acc = _figures(c)
            parts = _part_texts(c, extra, interval=False)  # 80 columns: in the note
            texts = (label, base, cand, change, _rounds(c), *((acc,) if acc_col else ()), *parts)
            table.add_row(
                *(escape(v) for v in texts),
                f"[{style}]{verdict}[/]" if style else verdict,
            )
        out.print(table)
        for c in cells:
            if c.note:
                out.print(f"  {_label(c)}: {c.note}", markup=False, highlight=False)
    out.print(_summary(result), markup=False)


def render_markdown(result: Comparison) -> str:
    """GitHub-flavoured Markdown: a summary line, one table, then the notes."""
    extra = _extra_columns(result)
    heads = {"throughput": "Δ samples/s [CI]", "energy": "Δ mJ/inference [CI]"}
    lines = [
        f"**harness compare** `{result.baseline_id}` → `{result.candidate_id}`: {_summary(result)}",
        "",
        "| device | model | cell | baseline µs | candidate µs | change [CI] | rounds | p "
        "| pooled shift | Δ acc | " + "".join(f"{heads[e]} | " for e in extra) + "verdict |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|" + "--:|" * len(extra) + "---|",
    ]
    for c in result.cells:
        label, base, cand, change, shift, p, acc = _figures(c)
        verdict = f"**{c.verdict}**" if c.is_regression else c.verdict
        row = (c.cell.device, c.cell.model, label, base, cand, change, _rounds(c), p, shift,
               acc, *_part_texts(c, extra), verdict)  # fmt: skip
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
    acc_text = "" if acc is None else _metric_change(acc)
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
        f"{_pct(lat.shift)}%" if lat.shift is not None and math.isfinite(lat.shift) else "-",
        _p(lat.p_value),
        acc_text,
    )


def _extra_columns(result: Comparison) -> tuple[str, ...]:
    """The "throughput" and/or "energy" columns, where some cell compared them: a
    plain latency comparison keeps its columns as they were."""
    return tuple(
        name
        for name in ("throughput", "energy")
        if any(getattr(c, name) is not None for c in result.cells)
    )


def _part_texts(c: CellComparison, extra: tuple[str, ...], interval: bool = True) -> list[str]:
    """The throughput / energy column texts of one cell, for the columns shown."""
    return [_part_text(getattr(c, name), interval) for name in extra]


def _part_text(part, interval: bool = True) -> str:
    """Text like "-12% [-15, -9] lower": the change, its interval where there is one,
    the verdict; a part without a verdict (energy while charging) is "n/a", the note
    says why."""
    if part is None:
        return ""
    if part.verdict is None:
        return "n/a"
    change = part.change
    if change is None or not math.isfinite(change):
        return part.verdict
    ci = ""
    if (
        interval
        and part.ci_low is not None
        and all(map(math.isfinite, (part.ci_low, part.ci_high)))
    ):
        ci = f" [{_pct(part.ci_low)}, {_pct(part.ci_high)}]"
    return f"{_pct(change)}%{ci} {part.verdict}"


def _metric_change(acc) -> str:
    """The primary metric's change in its threshold units, named unless it is top-1."""
    unit = acc.units if acc.units in ("pp", "dB") else ""
    text = f"0{unit}" if acc.change == 0 else f"{acc.change:+.3g}{unit}"
    return text if acc.metric == "top1" else f"{acc.metric} {text}"


def _rounds(c: CellComparison) -> str:
    lat = c.latency
    if lat is None:
        return ""
    b, n = lat.rounds_baseline, lat.rounds_candidate
    return str(b) if b == n else f"{b}/{n}"


def _label(c: CellComparison) -> str:
    return c.cell.setting


def _full_label(c: CellComparison) -> str:
    return f"{c.cell.device}/{c.cell.model}/{_label(c)}"


def _caption(result: Comparison) -> str:
    cfg = result.config
    level = f"{100 * (1 - cfg.alpha):g}%"
    thr = f"{100 * cfg.latency_threshold:g}%"
    how = (
        "per-round ratios in the same run (paired)"
        if result.paired
        else "round medians of two runs (Yuen, 20% trimmed)"
    )
    text = (
        f"base/cand: typical round median µs; change with its {level} interval from the "
        f"{how}; rnd: rounds per side; slower/faster: interval excludes 0 and change beyond "
        f"{thr}; same: interval inside ±{thr}; else inconclusive; accuracy down = the primary "
        f"metric worse by more than {_threshold(result)}; ᵃ = aggregate-only (round means)"
    )
    extra = _extra_columns(result)
    if "throughput" in extra:
        text += (
            "; tput: samples/s of the load window, one rate per round, same rule (lower = "
            "throughput down, a regression)"
        )
    if "energy" in extra:
        text += (
            "; energy: mJ per inference, one reading per round, same rule (more = energy "
            "up, a regression); one reading a side: inconclusive; n/a: not on battery"
        )
    return text


def _threshold(result: Comparison) -> str:
    """The metric threshold the verdicts used, in its units (from any compared cell)."""
    acc = next((c.accuracy for c in result.cells if c.accuracy is not None), None)
    if acc is not None:
        return f"{acc.threshold:g} {acc.units}".strip()
    t = result.config.metric_threshold
    return (
        f"{t:g} (metric units)" if t is not None else f"{result.config.accuracy_threshold_pp:g} pp"
    )


def _summary(result: Comparison) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items()) or "no cells"
    verdict = "REGRESSION" if result.regressions else "no regression"
    unsure = result.counts().get("inconclusive", 0)
    if unsure and not result.regressions:  # no regression found is not an all-clear
        verdict = f"no regression found, {unsure} inconclusive"
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
