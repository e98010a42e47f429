"""The batch and concurrency figures of a run, as an HTML section of the report.

A cell measured at a batch other than 1, or as a load of N instances at once, has
figures the main cell table does not show: latency per sample and throughput in
samples per second, and for a load, p50/p99 under contention over its window (an
aggregate-only runner: each instance's own median and p95, as the tool printed them). One
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
    c = r.cell
    load = r.extra.get("load") if isinstance(r.extra.get("load"), dict) else None
    rate = r.throughput_sps
    if load:
        how = (
            f"{load.get('instances')} instance(s) at once, {load.get('requests'):.0f} "
            f"requests in {float(load.get('window_s') or 0):.1f} s"
        )
    else:
        how = "one request at a time: batch ÷ median"
    p50, p99 = _percentiles(r)
    cells = (
        c.model,
        c.setting,
        str(c.batch),
        str(c.concurrency),
        p50,
        p99,
        format_us(r.per_sample_us) if r.per_sample_us is not None else "",
        f"{rate:,.0f}" if rate is not None else "",
        how,
    )
    return "<tr>" + "".join(f"<td>{esc(x)}</td>" for x in cells) + "</tr>"


def _percentiles(r: CellRecord) -> tuple[str, str]:
    """The p50 and p99 columns. An aggregate-only runner (Android's benchmark_model)
    prints each instance's p5/median/p95 and no request's own latency: its columns show
    the range of the instances' medians and that no p99 exists (with their p95s), never
    a mean in the p50 column."""
    lat = r.latency
    if lat.median is not None:
        return format_us(lat.median), format_us(lat.p99) if lat.p99 is not None else ""
    aggs = (r.extra.get("runner") or {}).get("instances_aggregate") or []
    medians = [a["median"] for a in aggs if isinstance(a.get("median"), int | float)]
    p95s = [a["p95"] for a in aggs if isinstance(a.get("p95"), int | float)]
    if not medians:
        return f"mean {format_us(lat.center)}", "not printed by the tool"
    p99 = "not printed by the tool"
    if p95s:
        p99 += f" (p95 per instance: {_span(p95s)})"
    return f"{_span(medians)} (per instance)", p99


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return format_us(lo) if lo == hi else f"{format_us(lo)}–{format_us(hi)}"
