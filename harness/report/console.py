"""Terminal rendering with rich: readable at 80 columns, colour only on a TTY."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from harness.cells import CellRecord
from harness.convert.pipeline import ConvertResult
from harness.measure.metrics import record_primary
from harness.measure.rounds import precision, round_summaries
from harness.report.document import pareto_flags
from harness.report.sustained_view import sustained_line
from harness.report.together_view import together_line


def console() -> Console:
    """stdout console; rich drops colour by itself when stdout is not a terminal."""
    return Console(highlight=False)


def render_convert(result: ConvertResult) -> None:
    """One line per variant: size, hash prefix, ops, cache status."""
    out = console()
    table = Table(
        title=f"{result.source.path} -> {result.manifest_path.parent}", title_justify="left"
    )
    for col, justify in [
        ("variant", "left"),
        ("size", "right"),
        ("sha256", "left"),
        ("input", "left"),
        ("ops", "right"),
        ("cache", "left"),
    ]:
        table.add_column(col, justify=justify)
    for v in result.variants:
        if v.info is None:  # a recipe this model cannot take: the converter's reason
            table.add_row(v.name, "-", "unsupported", v.reason or "", "-", _cache(v))
            continue
        inp = v.info.inputs[0] if v.info.inputs else None
        table.add_row(
            v.name,
            _size(v.info.size_bytes),
            v.info.sha256[:12],
            f"{inp.dtype}{list(inp.shape_signature)}" if inp else "-",
            str(sum(op.count for op in v.info.ops)),
            _cache(v),
        )
    out.print(table)
    if result.all_cached:
        out.print("cache hit: all variants reused, no TensorFlow work done")
    out.print(f"manifest: {result.manifest_path}")


def _cache(v) -> str:
    return "hit" if v.cache_hit else "converted"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f}{unit[0]}" if unit == "B" else f"{n:.0f}{unit[0]}"
        n /= 1024
    return str(n)


def _half(half: float | None) -> str:
    # beyond ±100 % the figure says only "unknown": 2 rounds give t(1 df) = 12.7
    if half is None:
        return ""
    return " ±>100%" if half > 1 else f" ±{100 * half:.{0 if half >= 0.1 else 1}f}%"


def _caption(rows: list[CellRecord]) -> str:
    """The legend, naming only the marks that appear in this table."""
    counts = sorted({len(round_summaries(r)) for r in rows if r.status == "ok"})
    rounds = "-".join(str(n) for n in counts[:: max(1, len(counts) - 1)]) or "0"
    parts = [
        f"* Pareto-optimal (latency vs {metric_label(rows)}); times in µs, init in ms; ± the 95 % "
        f"interval of the median from its {rounds} rounds"
    ]
    if any(r.latency and r.latency.median is None for r in rows if r.status == "ok"):
        parts.append("ᵃ aggregate-only (benchmark_model): the mean, no p90")
    if any(isinstance(e := r.extra.get("energy"), dict) and not e.get("meaningful") for r in rows):
        parts.append("ⁿ energy not meaningful (charging, or no more than idle)")
    if any(r.extra.get("fully_accelerated") is False for r in rows if r.status == "ok"):
        parts.append("† not fully delegated (ran partly or wholly on CPU)")
    return "; ".join(parts)


def render_run(run_id: str, records: list[CellRecord], out: Console | None = None) -> None:
    """Per device: cells sorted by steady-state median, Pareto-optimal cells starred.

    A column nothing was measured for (no accuracy without --eval, say) is left out, and
    a model column appears when the run holds several models (A/B in one run)."""
    out = out or console()
    pareto = pareto_flags(records)
    for device in dict.fromkeys(r.cell.device for r in records):
        rows = sorted((r for r in records if r.cell.device == device), key=_sort_key)
        notes: dict[tuple, list[str]] = {}
        lines = []
        for r in rows:
            line = _row(r, pareto.get(id(r), False))
            if r.status != "ok":
                notes.setdefault((r.status, r.reason), []).append(r.cell.setting)
            lines.append(line)
        several = len({r.cell.model for r in rows}) > 1
        # batch and concurrency columns (and their figures) only where the run swept them
        swept = {"batch", "/sample"} if any(r.cell.batch != 1 for r in rows) else set()
        if any(r.cell.concurrency != 1 or r.extra.get("load") for r in rows):
            swept |= {"conc", "p99"}
        if any(isinstance(r.extra.get("energy"), dict) for r in rows):
            swept.add("mJ/inf")
        if swept - {"mJ/inf"}:
            swept.add("samp/s")
        # the sweep's figures take the place of the single-request details (80 columns)
        hidden = {"e2e", "init", "drift", "p90"} if swept else set()
        cols = [
            c
            for c in _COLUMNS
            if (c != "model" or several)
            and (c not in _SWEPT or c in swept)
            and c not in hidden
            and (c in _ALWAYS or any(line[c] not in ("", "-") for line in lines))
        ]
        table = Table(
            title=f"run {run_id} · device {device}",
            title_justify="left",
            caption=_caption(rows),
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            collapse_padding=True,
            pad_edge=False,
        )
        for col in cols:
            left = col in ("model", "variant", "deleg")
            head = _short(metric_label(rows)) if col == "acc" else col
            table.add_column(head, justify="left" if left else "right", no_wrap=True)
        for line in lines:
            table.add_row(*(line[c] for c in cols))
        out.print(table)
        for r in rows:  # --sustained: the onset and steady state, one line per cell
            if r.status == "ok" and (line := sustained_line(r)):
                out.print(line, markup=False)
        for r in rows:  # --together: alone against beside the other models
            if line := together_line(r):
                out.print(line, markup=False)
        for (status, reason), cells in notes.items():
            out.print(
                f"{status} ({len(cells)}: {', '.join(cells[:4])}"
                f"{', ...' if len(cells) > 4 else ''}): {reason}",
                markup=False,
            )


_COLUMNS = (
    "model",
    "variant",
    "deleg",
    "thr",
    "batch",
    "conc",
    "median",
    "p90",
    "p99",
    "/sample",
    "samp/s",
    "mJ/inf",
    "e2e",
    "init",
    "acc",
    "drift",
    "size",
)
_ALWAYS = ("variant", "deleg", "thr", "median", "size")
# shown only when the run swept batch or concurrency (--batch, --concurrency)
_SWEPT = ("batch", "conc", "p99", "/sample", "samp/s", "mJ/inf")


def _row(r: CellRecord, on_front: bool) -> dict[str, str]:
    c = r.cell
    line = dict.fromkeys(_COLUMNS, "")
    line |= {"model": c.model, "variant": c.variant, "deleg": c.delegate, "thr": str(c.threads)}
    line |= {"batch": str(c.batch), "conc": str(c.concurrency)}
    line["size"] = _size(r.size_bytes)
    if r.status != "ok":
        line["median"] = f"[yellow]{r.status}[/]"
        return line
    drift = (r.drift or {}).get("max_abs")
    lat = r.latency
    half = precision(r)
    line |= {
        "variant": c.variant + ("*" if on_front else ""),
        "deleg": c.delegate + ("†" if r.extra.get("fully_accelerated") is False else ""),
        "median": _us(lat.center if lat else None)
        + ("" if lat is None or lat.median is not None else "ᵃ")
        + _half(half),
        "p90": _us(lat.p90 if lat else None),
        "p99": _us(lat.p99 if lat else None),
        "/sample": _us(r.per_sample_us),
        "samp/s": _rate(r.throughput_sps),
        "mJ/inf": _energy(r.extra.get("energy")),
        "e2e": _us(r.end_to_end.median if r.end_to_end else None),
        "init": _ms(r.init_us),
        "acc": "-" if r.accuracy is None else _figure(r.accuracy),
        "drift": "-" if drift is None else f"{drift:.0e}",
    }
    return line


def metric_label(rows: list[CellRecord]) -> str:
    """The run's primary metric as its records name it ("accuracy" for top-1 and for
    records stored before metrics were chosen)."""
    m = next((m for r in rows if (m := record_primary(r)) is not None), None)
    return "accuracy" if m is None or m.name == "top1" else m.name


def _short(label: str) -> str:
    # the 80-column table keeps its width: top-1 stays "acc", others show their name
    return "acc" if label == "accuracy" else label.split(":")[0][:10]


def _figure(v: float) -> str:
    """Three decimals for fractions (0.974), three significant digits beyond (41.2)."""
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def _sort_key(r: CellRecord):
    order = {"ok": 0, "unsupported": 1, "failed": 2}
    return (order.get(r.status, 3), r.latency.center if r.latency else 0.0)


def _energy(e) -> str:
    """mJ per inference; marked ⁿ when not meaningful (charging, below resolution)."""
    if not isinstance(e, dict) or e.get("mj_per_inference") is None:
        return "-"
    return f"{e['mj_per_inference']:.3g}" + ("" if e.get("meaningful") else "ⁿ")


def _rate(v: float | None) -> str:
    """Samples per second, three significant digits (41.2k)."""
    if v is None:
        return "-"
    return f"{v / 1000:.3g}k" if v >= 1000 else f"{v:.3g}"


def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v / 1000:.1f}"
