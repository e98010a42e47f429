"""The batch and concurrency figures of a run, as an HTML section of the report.

A cell measured at a batch other than 1, or as a load of N instances at once, has
figures the main cell table does not show: latency per sample and throughput in
samples per second, and for a load, p50/p99 under contention over its window. One
table per device lists them, sorted so that each setting's sweep reads top to bottom.
"""

from __future__ import annotations

from harness.cells import CellRecord
from harness.report.recommend import format_us
from harness.report.svg import esc


def swept(rows: list[CellRecord]) -> bool:
    """Whether these cells swept batch or concurrency (else there is nothing to show)."""
    return any(r.cell.batch != 1 or r.cell.concurrency != 1 or r.extra.get("load") for r in rows)


def load_section(rows: list[CellRecord]) -> str:
    """A "batch & concurrency" table of the ok cells, or "" when nothing was swept."""
    if not swept(rows):
        return ""
    ok = sorted(
        (r for r in rows if r.status == "ok" and r.latency),
        key=lambda r: (
            (r.cell.model, r.cell.variant, r.cell.delegate, r.cell.threads)
            + (r.cell.batch, r.cell.concurrency)
        ),
    )
    head = "".join(
        f'<th scope="col">{esc(h)}</th>'
        for h in (
            "model",
            "setting",
            "batch",
            "concurrency",
            "p50 / request",
            "p99 / request",
            "per sample",
            "samples/s",
            "how",
        )
    )
    body = "".join(_row(r) for r in ok)
    return (
        '<h3>batch &amp; concurrency</h3><div class="scroll"><table class="load">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _row(r: CellRecord) -> str:
    c, lat = r.cell, r.latency
    load = r.extra.get("load") if isinstance(r.extra.get("load"), dict) else None
    rate = r.throughput_sps
    if load:
        how = (
            f"{load.get('instances')} instance(s) at once, {load.get('requests'):.0f} "
            f"requests in {float(load.get('window_s') or 0):.1f} s"
        )
    else:
        how = "one request at a time: batch ÷ median"
    cells = (
        c.model,
        c.setting,
        str(c.batch),
        str(c.concurrency),
        format_us(lat.median) if lat.median is not None else format_us(lat.center),
        format_us(lat.p99) if lat.p99 is not None else "",
        format_us(r.per_sample_us) if r.per_sample_us is not None else "",
        f"{rate:,.0f}" if rate is not None else "",
        how,
    )
    return "<tr>" + "".join(f"<td>{esc(x)}</td>" for x in cells) + "</tr>"
