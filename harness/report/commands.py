"""What `harness report` and `harness recommend` do, below the click layer.

Each function takes plain values, writes to the given console / files, and returns
the exit code (0, or EXIT_REGRESSION when an SLO is not met).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.cells import CellRecord
from harness.errors import EXIT_OK, EXIT_REGRESSION, HarnessError
from harness.report.recommend import Budget, Pick, describe, parse_slo, recommend
from harness.store.store import Store

RECOMMEND_SCHEMA = 1


@dataclass(frozen=True)
class ReportOutputs:
    """Where `harness report` writes: files, and at most one stdout format."""

    html: Path | None = None
    png: Path | None = None
    markdown: bool = False
    as_json: bool = False

    def __post_init__(self) -> None:
        if self.markdown and self.as_json:
            raise HarnessError("give at most one of --markdown and --json")

    @property
    def terminal(self) -> bool:
        return not (self.html or self.png or self.markdown or self.as_json)


def resolve_run_id(store: Store, run_id: str) -> str:
    """An id as given, or 'latest' for the newest run; HarnessError when unknown."""
    if run_id == "latest":
        runs = store.list_runs(limit=1)
        if not runs:
            raise HarnessError(f"no runs in {store.url}")
        return runs[0].run_id
    return store.get_run(run_id).run_id


def with_snapshots(records: list[CellRecord], store: Store, run_id: str) -> list[CellRecord]:
    """Attach the run's stored device snapshots where the report looks for them: the
    device's first cell gets env["before"], its last cell env["after"]."""
    snaps = store.snapshots(run_id)
    out = list(records)
    for s in snaps:
        idx = [i for i, r in enumerate(out) if r.cell.device == s["device"]]
        if not idx:
            continue
        i = idx[0] if s["phase"] == "before" else idx[-1]
        out[i] = out[i].with_(env={**out[i].env, s["phase"]: s["data"]})
    return out


def report_run(
    store: Store,
    run_id: str,
    outputs: ReportOutputs,
    slo: str | None,
    out: Console,
    err: Console,
) -> int:
    """Render one run in every requested form; EXIT_REGRESSION when --slo is not met."""
    from harness.report.console import render_run
    from harness.report.document import run_document
    from harness.report.html import run_charts, run_html
    from harness.report.markdown import run_markdown
    from harness.report.png import write_png

    run_id = resolve_run_id(store, run_id)
    run, records = store.get_run(run_id), with_snapshots(store.cells(run_id), store, run_id)
    picks = recommend(records, parse_slo(slo)) if slo else []
    if outputs.html:
        _write(outputs.html, run_html(run_id, records, run, picks))
        err.print(f"wrote {outputs.html}", markup=False, highlight=False)
    if outputs.png:
        write_png(run_charts(records, picks), outputs.png)
        err.print(f"wrote {outputs.png}", markup=False, highlight=False)
    if outputs.as_json:
        doc = run_document(run_id, records, run.status)
        if picks:
            doc["slo"] = [p.to_dict() for p in picks]
        _emit(out, json.dumps(doc, indent=2))
    elif outputs.markdown:
        _emit(out, run_markdown(run_id, records))
    elif outputs.terminal:
        render_run(run_id, records, out)
    if picks and not outputs.as_json:
        _print_picks(picks, out if not outputs.markdown else err)
    return EXIT_OK if all(p.met for p in picks) else EXIT_REGRESSION


def report_trend(
    store: Store,
    model: str,
    device: str,
    last: int,
    baseline: str | None,
    outputs: ReportOutputs,
    out: Console,
    err: Console,
) -> int:
    """Trend charts of a model on a device over the last runs."""
    from harness.measure.series import load_trend
    from harness.report.png import write_png
    from harness.report.trend import render_trend, trend_charts, trend_html

    if outputs.markdown:
        raise HarnessError("--markdown is not available with --trend; use --html or --json")
    trend = load_trend(store, model, device, last=last, baseline=baseline)
    if outputs.html:
        _write(outputs.html, trend_html(trend))
        err.print(f"wrote {outputs.html}", markup=False, highlight=False)
    if outputs.png:
        write_png(trend_charts(trend), outputs.png)
        err.print(f"wrote {outputs.png}", markup=False, highlight=False)
    if outputs.as_json:
        _emit(out, json.dumps(trend.to_dict(), indent=2))
    elif outputs.terminal:
        render_trend(trend, out)
    return EXIT_OK


def recommend_run(store: Store, run_id: str, budget: Budget, as_json: bool, out: Console) -> int:
    """Print the pick per device; EXIT_REGRESSION when some device has none."""
    run_id = resolve_run_id(store, run_id)
    records = store.cells(run_id)
    if not records:
        raise HarnessError(f"run {run_id} has no cells")
    picks = recommend(records, budget)
    met = all(p.met for p in picks)
    if as_json:
        doc = {
            "schema": RECOMMEND_SCHEMA,
            "run_id": run_id,
            "met": met,
            "picks": [p.to_dict() for p in picks],
        }
        _emit(out, json.dumps(doc, indent=2))
    else:
        _print_picks(picks, out)
    return EXIT_OK if met else EXIT_REGRESSION


def _print_picks(picks: list[Pick], out: Console) -> None:
    for p in picks:
        style = "green" if p.met else "bold red"
        lines = describe(p)
        out.print(lines[0], style=style, markup=False, highlight=False, soft_wrap=True)
        for line in lines[1:]:
            out.print(line, markup=False, highlight=False, soft_wrap=True)


def _emit(out: Console, text: str) -> None:
    """Machine-readable text goes out verbatim: no wrapping, no colour."""
    out.file.write(text + "\n")
    out.file.flush()


def _write(path: Path, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror}") from exc
