"""Energy per inference of a run (--energy, Android), for the HTML report and Markdown.

The terminal table shows mJ per inference alone; a reader of the report also needs what
the figure rests on, since it is the whole device's draw above an idle baseline: the
idle and busy power, the joules, the inferences, the sampling rate actually reached and
the battery's status, with the reason when the figure is not meaningful (charging).
"""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.page import table_section

HEADINGS = (
    "model",
    "setting",
    "mJ / inference",
    "idle W",
    "busy W",
    "net J",
    "inferences",
    "sampled",
    "battery",
    "note",
)


def energy_rows(rows: list[CellRecord]) -> list[tuple[str, ...]]:
    """One row of text per cell that carries an energy figure (HEADINGS' columns)."""
    out = []
    for r in rows:
        e = r.extra.get("energy")
        if not isinstance(e, dict):
            continue
        mj = e.get("mj_per_inference")
        note = e.get("note") or ("" if e.get("meaningful") else "not meaningful")
        out.append(
            (
                r.cell.model,
                r.cell.setting,
                "-" if mj is None else f"{mj:.3g}" + ("" if e.get("meaningful") else " ⁿ"),
                _num(e.get("idle_w"), "{:.3f}"),
                _num(e.get("busy_w"), "{:.3f}"),
                _num(e.get("joules_net"), "{:.3g}"),
                _num(e.get("inferences"), "{:.0f}"),
                f"{_num(e.get('samples'), '{:.0f}')} at {_num(e.get('rate_hz'), '{:.1f}')} Hz",
                str(e.get("battery_status") or "unknown"),
                str(note),
            )
        )
    return out


def energy_section(rows: list[CellRecord]) -> str:
    """An "energy" table of the cells measured with --energy, or "" when none was."""
    table = energy_rows(rows)
    if not table:
        return ""
    note = (
        "the whole device above its idle draw (2 s just before each pass), battery "
        "sampled on the device; ⁿ: not meaningful (not discharging)"
    )
    return table_section("energy per inference", note, HEADINGS, table, "energy")


def _num(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)
