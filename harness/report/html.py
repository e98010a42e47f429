"""The self-contained HTML run report: inline SVG charts, inline CSS and a little JS.

Works offline (nothing is fetched), and works without JavaScript too (the tooltips
fall back to the browser's own SVG <title>; only table sorting needs the script).
Every string that came from the store is escaped with ``esc``.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.cells import CellRecord
from harness.measure.metrics import record_primary
from harness.report.document import pareto_flags
from harness.report.energy_view import energy_section
from harness.report.environment import display_status, environment_section, warnings
from harness.report.load_view import load_section
from harness.report.page import page
from harness.report.recommend import Pick, format_latency, format_us
from harness.report.sustained_view import sustained_section
from harness.report.svg import BreakdownRow, ScatterPoint, breakdown_chart, esc, scatter_chart
from harness.report.together_view import together_section
from harness.store.store import RunInfo

PROFILE_KEYS = ("op_profile", "profile", "ops_profile")
COVERAGE_KEYS = ("fully_accelerated", "delegated_ops", "total_ops", "coverage", "adapter")


def run_html(
    run_id: str,
    records: list[CellRecord],
    run: RunInfo | None = None,
    picks: Sequence[Pick] = (),
) -> str:
    """The whole report page for one run."""
    pareto = pareto_flags(records)
    devices = list(dict.fromkeys(r.cell.device for r in records))
    models = list(dict.fromkeys(r.cell.model for r in records))
    by_device = {p.device: p for p in picks}
    body = [_header(run_id, run, models, records)]
    if picks:
        body.append(_slo_section(picks))
    if warns := warnings(records):
        items = "".join(f"<li>{esc(w)}</li>" for w in warns)
        body.append(f'<section class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>')
    if len(devices) > 1:
        links = " · ".join(f'<a href="#device-{i}">{esc(d)}</a>' for i, d in enumerate(devices))
        body.append(f"<nav>devices: {links}</nav>")
    for i, device in enumerate(devices):
        rows = [r for r in records if r.cell.device == device]
        body.append(_device_section(i, device, rows, pareto, by_device.get(device)))
    if not records:
        body.append("<p>This run has no cells.</p>")
    return page(f"harness report {run_id} · {', '.join(models)}", "".join(body))


def run_charts(records: list[CellRecord], picks: Sequence[Pick] = ()) -> list[str]:
    """The main charts (scatter and breakdown per device), for the PNG export."""
    pareto = pareto_flags(records)
    by_device = {p.device: p for p in picks}
    charts = []
    for i, device in enumerate(dict.fromkeys(r.cell.device for r in records)):
        rows = [r for r in records if r.cell.device == device]
        charts.append(_scatter(i, device, rows, pareto, by_device.get(device)))
        charts.append(_breakdown(i, device, rows))
    return charts


def _ident(device_index: int, cell_index: int) -> str:
    return f"d{device_index}-c{cell_index}"  # never a store string: safe in selectors


def _header(run_id: str, run: RunInfo | None, models: list[str], records) -> str:
    counts: dict[str, int] = {}
    for r in records:
        counts[display_status(r)] = counts.get(display_status(r), 0) + 1
    facts = [("run", run_id), ("model", ", ".join(models) or "-")]
    if run:
        facts += [("started", f"{run.created_at:%Y-%m-%d %H:%M:%S} UTC"), ("status", run.status)]
        if run.tag:
            facts.append(("tag", run.tag))
        if run.command:
            facts.append(("command", run.command))
    facts.append(("cells", ", ".join(f"{n} {s}" for s, n in counts.items()) or "0"))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return f"<header><h1>harness report</h1><dl class='facts'>{dl}</dl></header>"


def _slo_section(picks: Sequence[Pick]) -> str:
    rows = []
    for p in picks:
        b = p.budget
        want = f"{b.metric} ≤ {format_us(b.max_latency_us)}"
        if b.min_accuracy is not None:
            want += f", accuracy ≥ {b.min_accuracy:g}"
        if p.best:
            best = f"{p.best.label} ({format_latency(p.best)}, {_acc(p.best.accuracy)})"
        else:
            best = "NOT MET" + (
                f" — fastest {p.fastest.label} at {format_latency(p.fastest)}" if p.fastest else ""
            )
        runner = (
            f"{p.runner_up.label} ({format_latency(p.runner_up)}, {_acc(p.runner_up.accuracy)})"
            if p.runner_up
            else "-"
        )
        cls = "met" if p.met else "unmet"
        rows.append(
            f'<tr class="{cls}"><td>{esc(p.device)}</td><td>{esc(want)}</td>'
            f"<td>{esc(best)}</td><td>{esc(runner)}</td><td>{p.eligible} of {p.ok}</td>"
            f"<td>{esc('; '.join(p.notes))}</td></tr>"
        )
    return (
        '<section class="slo"><h2>SLO pick</h2><table><thead><tr><th>device</th>'
        "<th>budget</th><th>best</th><th>runner-up</th><th>qualify</th><th>notes</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _device_section(i: int, device: str, rows, pareto, pick: Pick | None) -> str:
    parts = [
        f'<section class="device" id="device-{i}"><h2>device {esc(device)}</h2>',
        f"<figure>{_scatter(i, device, rows, pareto, pick)}</figure>",
        f"<figure>{_breakdown(i, device, rows)}</figure>",
        _cell_table(i, rows, pareto),
        load_section(rows),
        energy_section(rows),
        sustained_section(rows),
        together_section(rows),
        _profile_section(i, rows),
        _coverage_section(i, rows),
        environment_section(rows),
        "</section>",
    ]
    return "".join(parts)


def _scatter(i: int, device: str, rows, pareto, pick: Pick | None) -> str:
    points = []
    for j, r in enumerate(rows):
        if r.status != "ok" or not r.latency:
            continue
        points.append(
            ScatterPoint(
                ident=_ident(i, j),
                latency_us=r.latency.center,
                # aggregate-only cells (benchmark_model) have no CI: a bare point
                ci_low=_or(r.latency.ci_low, r.latency.center),
                ci_high=_or(r.latency.ci_high, r.latency.center),
                accuracy=r.accuracy,
                colour_key=r.cell.delegate,
                shape_key=r.cell.variant,
                tip=cell_tip(r, pareto.get(id(r), False)),
                on_front=pareto.get(id(r), False),
                picked=bool(pick and pick.best and pick.best.cell == r.cell),
            )
        )
    budget = pick.budget if pick else None
    name, axis = _metric_axis(rows)
    return scatter_chart(
        points,
        f"{device}: latency vs {name}",
        y_label=axis,
        budget_us=budget.max_latency_us if budget else None,
        budget_label=f"{budget.metric} ≤ {format_us(budget.max_latency_us)}" if budget else "",
    )


def _metric_axis(rows) -> tuple[str, str]:
    """(name, y-axis label) of the run's primary metric: "accuracy (top-1)" before
    metrics were chosen or for top1; else its name, units and direction."""
    m = next((m for r in rows if (m := record_primary(r)) is not None), None)
    if m is None or m.name == "top1":
        return "accuracy", "accuracy (top-1)"
    units = f", {m.units}" if m.units and m.units != "fraction" else ""
    way = "higher" if m.higher_is_better else "lower"
    return m.name, f"{m.name}{units} ({way} is better)"


def _breakdown(i: int, device: str, rows) -> str:
    several = len({r.cell.model for r in rows}) > 1  # A/B, --together: bars name the model
    bars = [
        BreakdownRow(
            ident=_ident(i, j),
            label=f"{r.cell.model} {_label(r)}" if several else _label(r),
            init_us=r.init_us,
            first_us=r.first_us,
            p50_us=r.latency.center,
            p99_us=r.latency.p99,
            e2e_us=r.end_to_end.median if r.end_to_end else None,
        )
        for j, r in enumerate(rows)
        if r.status == "ok" and r.latency
    ]
    bars.sort(key=lambda b: b.p50_us)
    return breakdown_chart(bars, f"{device}: service latency")


def _label(r: CellRecord) -> str:
    return r.cell.setting.replace("/", " ")


def cell_tip(r: CellRecord, on_front: bool = False) -> str:
    """Every figure of an ok cell, one per line (the hover text)."""
    c, lat = r.cell, r.latency
    lines = [
        f"{c.model} / {c.variant} / {c.delegate} / {c.threads} thread(s)"
        + (f" / batch {c.batch}" if c.batch != 1 else "")
        + (f" / {c.concurrency} at once" if c.concurrency != 1 else ""),
        f"median {format_us(lat.median)} (95% CI {format_us(lat.ci_low)} – "
        f"{format_us(lat.ci_high)})",
        f"p90 {format_us(lat.p90)} · p99 {format_us(lat.p99)}",
        f"mean {format_us(lat.mean)} ± {format_us(lat.std)} · min {format_us(lat.min)} · "
        f"max {format_us(lat.max)}",
    ]
    if r.end_to_end:
        lines.append(f"end-to-end median {format_us(r.end_to_end.median)}")
    lines.append(f"init {format_us(r.init_us)} · first inference {format_us(r.first_us)}")
    drift = r.drift or {}
    name = _metric_axis([r])[0]
    acc = f"{name} {_acc(r.accuracy)}"
    if drift.get("max_abs") is not None:
        acc += f" · drift max {drift['max_abs']:.1e}"
    if drift.get("top1_agreement") is not None:
        acc += f" · top-1 agreement {drift['top1_agreement']:.1%}"
    lines.append(acc)
    if lat.aggregate_only:
        lines.append(f"n = {lat.n} runs, aggregate-only (the tool printed no samples)")
    else:
        lines.append(f"n = {lat.n} samples, {lat.outliers} outliers (kept)")
    if r.peak_rss_kb:
        lines.append(f"peak RSS {r.peak_rss_kb / 1024:.1f} MiB")
    if display_status(r) != "ok":
        lines.append(display_status(r))
    if on_front:
        lines.append("Pareto-optimal")
    return "\n".join(lines)


def _acc(a: float | None) -> str:
    return "-" if a is None else f"{a:.4f}"


# The primary metric ("accuracy", shown under its own name) sits beside the latency it
# trades against: at the width of a laptop screen both are in view without scrolling.
_COLUMNS = (
    "model", "variant", "delegate", "threads", "status", "reason", "median", "95% CI",
    "accuracy", "p90", "p99", "e2e", "init", "first", "drift", "size", "peak RSS",
    "outliers", "Pareto",
)  # fmt: skip


def _cell_table(i: int, rows, pareto) -> str:
    name = _metric_axis(rows)[0]
    head = "".join(
        f'<th scope="col" title="click to sort">{esc(name if c == "accuracy" else c)}</th>'
        for c in _COLUMNS
    )
    body = []
    for j, r in enumerate(rows):
        c, lat = r.cell, r.latency
        status = display_status(r)
        drift = (r.drift or {}).get("max_abs")
        reason = r.reason or ""
        if status == "partially delegated" and not reason:
            reason = _coverage_text(r.extra)
        cells = [
            _td(c.model), _td(c.variant), _td(c.delegate), _td(c.threads, c.threads),
            f'<td class="st st-{status.split()[0]}">{esc(status)}</td>',
            _td_us(lat.median if lat else None),
            _td(f"{format_us(lat.ci_low)} – {format_us(lat.ci_high)}" if lat else "",
                lat.ci_high - lat.ci_low if lat and lat.ci_low is not None else None),
            _td(_acc(r.accuracy) if r.accuracy is not None else "", r.accuracy),
            _td_us(lat.p90 if lat else None), _td_us(lat.p99 if lat else None),
            _td_us(r.end_to_end.median if r.end_to_end else None),
            _td_us(r.init_us), _td_us(r.first_us),
            _td(f"{drift:.1e}" if drift is not None else "", drift),
            _td(_size(r.size_bytes), r.size_bytes),
            _td(f"{r.peak_rss_kb / 1024:.1f} MiB" if r.peak_rss_kb else "", r.peak_rss_kb),
            _td(_or(lat.outliers, "") if lat else "", lat.outliers if lat else None),
            _td("★" if pareto.get(id(r)) else "", 1 if pareto.get(id(r)) else 0),
        ]  # fmt: skip
        # after status, as in _COLUMNS (at 4 it sat under the "status" heading)
        cells.insert(5, f'<td class="reason">{esc(reason)}</td>')
        body.append((_row_order(r), j, f'<tr data-cell="{_ident(i, j)}">{"".join(cells)}</tr>'))
    shown = [row for (rank, _), _, row in sorted(body) if rank != 1]
    return (
        f'<h3>cells</h3><div class="scroll"><table class="sortable cells" id="cells-{i}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(shown)}</tbody>"
        f"{_unsupported_groups(rows, body)}</table></div>"
    )


def _unsupported_groups(rows, body) -> str:
    """Unsupported cells grouped under their reason, in a tbody of their own (the sort
    script sorts the first tbody only): one visible line per reason naming the cells,
    the cells' own rows kept in the page, hidden."""
    groups: dict[str, list[int]] = {}
    for j, r in enumerate(rows):
        if r.status == "unsupported":
            groups.setdefault(r.reason or "unsupported", []).append(j)
    if not groups:
        return ""
    html = {j: row for _, j, row in body}
    parts = []
    for reason, members in groups.items():
        names = ", ".join(_label(rows[j]).replace(" ", "/") for j in members)
        parts.append(
            f'<tr class="group"><th colspan="{len(_COLUMNS)}" scope="rowgroup">'
            f'<span class="st-unsupported">unsupported</span> · {len(members)} cell(s): '
            f'{esc(reason)}<br><span class="note">{esc(names)}</span></th></tr>'
        )
        parts += [html[j].replace("<tr ", "<tr hidden ", 1) for j in members]
    return '<tbody class="unsupported">' + "".join(parts) + "</tbody>"


def _row_order(r: CellRecord) -> tuple:
    """Like the terminal: ok cells fastest first, then unsupported, then failed."""
    rank = {"ok": 0, "unsupported": 1}.get(r.status, 2)
    return (rank, r.latency.center if r.status == "ok" and r.latency else 0.0)


def _or(value, default):
    return default if value is None else value


def _td(text, value=None) -> str:
    v = "" if value is None else f' data-v="{esc(value)}"'
    return f"<td{v}>{esc(text)}</td>"


def _td_us(us: float | None) -> str:
    return _td(format_us(us) if us is not None else "", us)


def _size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1024:.0f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


# -- optional sections: per-op profile, delegation coverage, environment --------------


def op_profile(extra: dict) -> list[tuple[str, float, int | None]]:
    """(op, time µs, count) from whichever profile field the runner wrote; [] if none.

    Accepts {op: µs}, or a list of {op|name|type, us|time_us|avg_us|total_us, count}.
    """
    raw = next((extra[k] for k in PROFILE_KEYS if extra.get(k)), None)
    out: list[tuple[str, float, int | None]] = []
    if isinstance(raw, dict):
        out = [(str(k), float(v), None) for k, v in raw.items() if isinstance(v, int | float)]
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict):
                continue
            name = next((item[k] for k in ("op", "name", "type") if k in item), None)
            t = next(
                (item[k] for k in ("us", "time_us", "avg_us", "total_us", "mean_us") if k in item),
                None,
            )
            if name is not None and isinstance(t, int | float):
                count = item.get("count")
                out.append((str(name), float(t), count if isinstance(count, int) else None))
    return sorted(out, key=lambda o: -o[1])


def _profile_section(i: int, rows, top: int = 10) -> str:
    blocks = []
    for r in rows:
        ops = op_profile(r.extra)
        if not ops:
            continue
        total = sum(t for _, t, _ in ops) or 1.0
        trs = "".join(
            f"<tr><td>{esc(name)}</td><td data-v='{t}'>{esc(format_us(t))}</td>"
            f"<td data-v='{t / total}'>{t / total:.0%}</td><td>{'' if n is None else n}</td></tr>"
            for name, t, n in ops[:top]
        )
        blocks.append(
            f"<details><summary>{esc(_label(r))}: top {min(top, len(ops))} of {len(ops)} ops"
            f"</summary><table class='sortable'><thead><tr><th>op</th><th>time</th>"
            f"<th>share</th><th>count</th></tr></thead><tbody>{trs}</tbody></table></details>"
        )
    if not blocks:
        return ""
    return f'<h3>per-op profile</h3><div class="profile">{"".join(blocks)}</div>'


def _coverage_text(extra: dict) -> str:
    d, t = extra.get("delegated_ops"), extra.get("total_ops")
    if isinstance(d, int) and isinstance(t, int) and t:
        return f"{d} of {t} ops on the delegate ({d / t:.0%})"
    if isinstance(extra.get("coverage"), int | float):
        return f"{extra['coverage']:.0%} of ops on the delegate"
    if extra.get("fully_accelerated") is False:
        return "some ops fell back to the CPU"
    return ""


def _coverage_section(i: int, rows) -> str:
    shown = [r for r in rows if any(k in r.extra for k in COVERAGE_KEYS)]
    if not shown:
        return ""
    trs = "".join(
        f"<tr><td>{esc(_label(r))}</td><td>{esc(display_status(r))}</td>"
        f"<td>{esc(_yes_no(r.extra.get('fully_accelerated')))}</td>"
        f"<td>{esc(_coverage_text(r.extra) or '-')}</td>"
        f"<td>{esc(r.extra.get('adapter') or '-')}</td>"
        f"<td>{esc(r.extra.get('sync_point') or '-')}</td></tr>"
        for r in shown
    )
    return (
        "<h3>delegation coverage</h3><table class='sortable'><thead><tr><th>cell</th>"
        "<th>status</th><th>fully accelerated</th><th>coverage</th><th>adapter</th>"
        f"<th>timed up to</th></tr></thead><tbody>{trs}</tbody></table>"
    )


def _yes_no(v) -> str:
    return {True: "yes", False: "no"}.get(v, "-")
