"""`harness report` and `harness recommend`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli.options import json_option, store_option
from harness.errors import HarnessError


@click.command()
@click.argument("run_id", required=False)
@store_option
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write one self-contained HTML report (works offline).",
)
@click.option(
    "--png",
    "png_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the main charts as PNG (needs headless Chromium).",
)
@click.option("--markdown", is_flag=True, help="Print Markdown tables.")
@json_option("the run (or trend)")
@click.option("--slo", help="Latency budget (20ms, p90:20ms); exit 1 when a device misses it.")
@click.option("--trend", is_flag=True, help="Trend charts over runs (needs --model, --device).")
@click.option("--model", help="With --trend: the model name.")
@click.option("--device", help="With --trend: the device.")
@click.option(
    "--last",
    type=click.IntRange(min=2),
    default=30,
    show_default=True,
    help="With --trend: how many of the newest runs.",
)
@click.option("--baseline", help="With --trend: the baseline run (default: tagged, else oldest).")
def report(
    run_id,
    store_url,
    html_path,
    png_path,
    markdown,
    as_json,
    slo,
    trend,
    model,
    device,
    last,
    baseline,
) -> None:
    """Show run RUN_ID ('latest' for the newest): table, HTML, PNG, Markdown or JSON."""
    from rich.console import Console

    from harness.report.commands import ReportOutputs, report_run, report_trend
    from harness.store.store import Store

    outputs = ReportOutputs(html_path, png_path, markdown, as_json)
    if trend:
        if run_id or slo:
            raise HarnessError("--trend takes --model and --device, not a RUN_ID or --slo")
        if not (model and device):
            raise HarnessError("--trend needs --model M and --device D")
    elif run_id is None:
        raise HarnessError("give a RUN_ID ('latest' for the newest), or --trend")
    elif model or device or baseline:
        raise HarnessError("--model, --device and --baseline go with --trend")
    store, out, err = Store(store_url), Console(highlight=False), Console(stderr=True)
    if trend:
        code = report_trend(store, model, device, last, baseline, outputs, out, err)
    else:
        code = report_run(store, run_id, outputs, slo, out, err)
    if code:
        sys.exit(code)


@click.command()
@click.argument("run_id")
@click.option("--max-latency", required=True, help="Latency budget with a unit: 500us, 20ms, 1s.")
@click.option(
    "--min-metric",
    "--min-accuracy",
    "min_metric",
    type=float,
    help="Floor of the run's primary quality metric in its own units and direction "
    "(top1 >= 0.97, rmse <= 0.3); cells without it fail it.",
)
@click.option(
    "--metric",
    type=click.Choice(["median", "p90", "p99", "e2e"]),
    default="median",
    show_default=True,
    help="Latency figure held to the budget (e2e: end-to-end median).",
)
@click.option(
    "--metric-tie",
    "--accuracy-tie",
    "metric_tie",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Primary-metric values this close to the best count as equal (the faster wins).",
)
@click.option(
    "--min-throughput",
    type=float,
    help="Samples per second a cell must reach (batch and concurrency cells measure it).",
)
@click.option(
    "--max-energy",
    type=float,
    help="mJ per inference a cell may cost (Android --energy cells measured on battery).",
)
@store_option
@json_option("the picks")
def recommend(
    run_id,
    max_latency,
    min_metric,
    metric,
    metric_tie,
    min_throughput,
    max_energy,
    store_url,
    as_json,
) -> None:
    """Per device, the best cell of RUN_ID within a latency budget; exit 1 if none is."""
    from rich.console import Console

    from harness.report.commands import recommend_run
    from harness.report.recommend import Budget, parse_latency
    from harness.store.store import Store

    budget = Budget(
        parse_latency(max_latency), min_metric, metric, metric_tie, min_throughput, max_energy
    )
    code = recommend_run(Store(store_url), run_id, budget, as_json, Console(highlight=False))
    if code:
        sys.exit(code)
