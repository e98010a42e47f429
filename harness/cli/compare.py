"""`harness compare`: two runs, or two models of one run."""

from __future__ import annotations

import sys

import click

from harness.cli.options import echo_json, store_option
from harness.errors import HarnessError


@click.command()
@click.argument("baseline")
@click.argument("candidate", required=False)
@click.option("--a", "model_a", help="With one RUN: the baseline model of an A/B run.")
@click.option("--b", "model_b", help="With one RUN: the candidate model of an A/B run.")
@store_option
@click.option(
    "--latency-threshold",
    default="5%",
    show_default=True,
    help="Smallest latency change that counts, in percent (the % sign is optional); "
    "the same threshold judges load throughput and energy per inference.",
)
@click.option(
    "--metric-threshold",
    "--accuracy-threshold",
    "metric_threshold",
    type=click.FloatRange(min=0),
    help="Largest tolerated worsening of the primary metric, in its own units: percentage "
    "points for fractions (top1, auc, f1; default 0.5), dB for snr (default 1), label units "
    "for mae/rmse (default 0).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Significance level; confidence intervals are at 1 - alpha.",
)
@click.option(
    "--run-noise",
    default="3%",
    show_default=True,
    help="Run-to-run SD of a whole run's level added to two-run intervals, at least (a "
    "cell with 3+ earlier runs in the store uses its own, when larger; paired A/B needs none).",
)
@click.option("--markdown", "fmt", flag_value="markdown", help="Print Markdown.")
@click.option("--json", "fmt", flag_value="json", help="Print the comparison as JSON.")
def compare(
    baseline,
    candidate,
    model_a,
    model_b,
    store_url,
    latency_threshold,
    metric_threshold,
    alpha,
    run_noise,
    fmt,
) -> None:
    """Compare run CANDIDATE against run BASELINE cell by cell, or model --b against
    model --a inside one run (round by round): latency, the primary metric, and where
    both sides have them the load throughput (--concurrency) and the energy per
    inference (--energy), each judged on one value per round; exit 1 on a regression
    (slower, accuracy down, throughput down, energy up)."""
    from harness.errors import EXIT_REGRESSION
    from harness.measure.compare import (
        CompareConfig,
        compare_models,
        compare_runs,
        parse_percent,
    )
    from harness.measure.series import history_noise
    from harness.report.compare_view import (
        comparison_document,
        render_comparison,
        render_markdown,
    )
    from harness.store.store import Store

    config = CompareConfig(
        latency_threshold=parse_percent(latency_threshold),
        metric_threshold=metric_threshold,
        alpha=alpha,
        run_noise=_run_noise(run_noise),
    )
    store = Store(store_url)
    if model_a or model_b:
        if not (model_a and model_b) or candidate:
            raise HarnessError("an A/B comparison takes one RUN with both --a NAME and --b NAME")
        store.get_run(baseline)  # an unknown id is a one-line error
        result = compare_models(store.cells(baseline), model_a, model_b, config, baseline)
    else:
        if not candidate:
            raise HarnessError("give BASELINE and CANDIDATE runs, or one RUN with --a and --b")
        for run_id in (baseline, candidate):
            store.get_run(run_id)
        # each cell's own run-to-run noise from the store's other runs, never below
        # --run-noise: a host whose runs move 10 % must not have 3 % assumed for it
        history = history_noise(store, exclude={candidate})
        noise = {c: max(config.run_noise, s) for c, s in history.items()}
        result = compare_runs(
            store.cells(baseline), store.cells(candidate), config, baseline, candidate, noise
        )
    if fmt == "json":
        echo_json(comparison_document(result))
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        render_comparison(result)
    if result.regressions:
        sys.exit(EXIT_REGRESSION)


def _run_noise(text: str) -> float:
    from harness.measure.compare import parse_percent

    value = parse_percent(text)
    if value >= 0.5:
        raise HarnessError(f"--run-noise {text!r} must be a percentage below 50%")
    return value
