"""Markdown tables of a run (for pull-request comments and chat): one per device."""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.document import pareto_flags
from harness.report.energy_view import HEADINGS, energy_rows
from harness.report.environment import display_status
from harness.report.recommend import format_us
from harness.report.sustained_view import sustained_line
from harness.report.together_view import HEADINGS as TOGETHER
from harness.report.together_view import together_rows


def run_markdown(run_id: str, records: list[CellRecord]) -> str:
    """Per device a table sorted by status then median; Pareto-optimal cells starred."""
    pareto = pareto_flags(records)
    out = [f"## harness run {_cell(run_id)}", ""]
    for device in dict.fromkeys(r.cell.device for r in records):
        rows = sorted((r for r in records if r.cell.device == device), key=_order)
        # batch/concurrency columns only in a run that swept them (older tables unchanged)
        swept = any(r.cell.batch != 1 or r.cell.concurrency != 1 for r in rows)
        extra_head = " batch | concurrency | per sample | samples/s |" if swept else ""
        out += [
            f"### device {_cell(device)}",
            "",
            "| model | variant | delegate | threads | status | median | p90 | p99 | e2e "
            "| init | accuracy |" + extra_head,
            "|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|" + ("--:|" * 4 if swept else ""),
        ]
        for r in rows:
            c, lat = r.cell, r.latency
            star = " ★" if pareto.get(id(r)) else ""
            status = display_status(r)
            if r.status != "ok" and r.reason:
                status += f": {r.reason}"
            out.append(
                "| "
                + " | ".join(
                    [
                        _cell(c.model),
                        _cell(c.variant) + star,
                        _cell(c.delegate),
                        str(c.threads),
                        _cell(status),
                        format_us(lat.median) if lat else "",
                        format_us(lat.p90) if lat else "",
                        format_us(lat.p99) if lat else "",
                        format_us(r.end_to_end.median) if r.end_to_end else "",
                        format_us(r.init_us) if r.init_us is not None else "",
                        "" if r.accuracy is None else f"{r.accuracy:.4f}",
                    ]
                    + (_swept(r) if swept else [])
                )
                + " |"
            )
        out += ["", "★ Pareto-optimal (latency vs accuracy)", ""]
        if energy := energy_rows(rows):  # --energy: what each mJ figure rests on
            out += ["| " + " | ".join(HEADINGS) + " |", "|---|---|" + "--:|" * 6 + "---|---|"]
            out += ["| " + " | ".join(_cell(x) for x in row) + " |" for row in energy]
            out += ["", "energy: the whole device above its idle draw; ⁿ not meaningful", ""]
        if together := together_rows(rows):  # --together: alone against beside the others
            out += ["| " + " | ".join(TOGETHER) + " |", "|---|---|---|" + "--:|" * 8]
            out += ["| " + " | ".join(_cell(x) for x in row) + " |" for row in together]
            out += ["", "together: slowdown = median over rounds of p50 together / alone", ""]
        lines = [sustained_line(r) for r in rows if r.status == "ok"]
        out += [f"- {_cell(line)}" for line in lines if line] + ([""] if any(lines) else [])
    return "\n".join(out)


def _swept(r: CellRecord) -> list[str]:
    """Batch, concurrency, per-sample latency and throughput of one row."""
    rate = r.throughput_sps
    return [
        str(r.cell.batch),
        str(r.cell.concurrency),
        format_us(r.per_sample_us) if r.per_sample_us is not None else "",
        f"{rate:.0f}" if rate is not None else "",
    ]


def _order(r: CellRecord):
    return ({"ok": 0, "unsupported": 1}.get(r.status, 2), r.latency.center if r.latency else 0)


def _cell(text: str) -> str:
    """Table-safe: no pipes, newlines or raw HTML."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )
