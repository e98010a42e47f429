"""`harness run`: options into a RunSpec, the sweep, the table."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections import Counter
from pathlib import Path

import click

from harness.cli.options import echo_json, json_option, parse_seconds, say, store_option
from harness.errors import HarnessError, NothingMeasured


def _android_options(command):
    """`harness run` options that only Android devices (benchmark_model) use."""
    options = [
        click.option(
            "--affinity",
            default="big",
            show_default=True,
            help="Android: pin to all|big|little cores (by per-core max frequency) or a hex MASK.",
        ),
        click.option(
            "--require-full-delegation",
            is_flag=True,
            help="Android: a gpu/nnapi cell that falls back to CPU fails instead.",
        ),
        click.option(
            "--gpu-precision-loss/--no-gpu-precision-loss",
            "gpu_precision_loss",
            default=None,
            help="Android gpu: allow fp16 (the tool's default) or not (same as gpu-f32).",
        ),
        click.option("--gpu-backend", type=click.Choice(["cl", "gl"]), help="Android gpu backend."),
        click.option("--nnapi-accelerator", help="Android nnapi: accelerator name to use."),
        click.option(
            "--disable-nnapi-cpu/--allow-nnapi-cpu",
            "disable_nnapi_cpu",
            default=True,
            show_default=True,
            help="Android nnapi: keep NNAPI off its CPU device (the tool's default) or allow "
            "it; always passed to benchmark_model explicitly.",
        ),
        click.option(
            "--op-profile", is_flag=True, help="Android: add a separate per-op profiling pass."
        ),
        click.option(
            "--eval-limit",
            type=click.IntRange(min=1),
            default=100,
            show_default=True,
            help="Android: eval samples run on the device per cell.",
        ),
        click.option(
            "--energy",
            is_flag=True,
            help="Android: sample the battery (~10 Hz) during each timed pass for mJ per "
            "inference above idle (the whole device's draw).",
        ),
        click.option(
            "--unplug",
            is_flag=True,
            help="Android: `dumpsys battery unplug` for the run (reset afterwards).",
        ),
        click.option(
            "--cooldown",
            "cooldown_s",
            type=click.FloatRange(min=0),
            default=0.0,
            help="Android: seconds between cells, then wait for normal thermal status.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--device", default="local", show_default=True, help="Device to run on.")
@click.option("--variants", help="Comma-separated variants (default: all in the manifest).")
@click.option(
    "--delegates",
    default="cpu,xnnpack",
    show_default=True,
    help="Comma-separated: cpu, xnnpack, gpu, gpu-f32, nnapi, npu.",
)
@click.option("--threads", default="1", show_default=True, help="Comma-separated thread counts.")
@click.option(
    "--batch",
    "batches",
    default="1",
    show_default=True,
    help="Comma-separated batch sizes: the input's batch dimension is resized to each.",
)
@click.option(
    "--concurrency",
    help="Comma-separated instance counts (max 64): each cell serves requests from N "
    "interpreter instances at once for a fixed window (--min-secs, else 1 s a round).",
)
@click.option(
    "--sustained",
    metavar="DURATION",
    help="Run each cell back to back this long (e.g. 5m; at least 10s): 1 s latency "
    "windows with CPU frequencies and the hottest thermal zone, throttling onset.",
)
@click.option(
    "--together",
    is_flag=True,
    help="Serve the MODELS at once (a thread each; Android: a benchmark_model process "
    "each) for a window per round (--min-secs, else 1 s), after each alone for the same "
    "window: each model's latency under contention and its slowdown against alone.",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Timed invoke() runs per cell, shared over --rounds (a minimum with --min-secs).",
)
@click.option("--min-secs", type=click.FloatRange(min=0), help="Time each cell at least this long.")
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Warm-up runs per cell and round (not timed into the statistics).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Interleaved rounds (fresh processes): each cell's runs are split across them.",
)
@click.option(
    "--precision",
    help="Keep adding rounds until the 95% interval of each cell's median is this narrow "
    "(e.g. 2%), or --max-time is spent.",
)
@click.option(
    "--max-time",
    help="With --precision: time budget of the whole run (e.g. 300s, 10m; default 10m).",
)
@click.option(
    "--cell-timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds one cell may take in one round before it is killed on the device.",
)
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(path_type=Path),
    help=".npz with 'x' (and optional labels 'y'), or a directory of images with "
    "labels.csv (file,label), for on-device accuracy and drift.",
)
@click.option(
    "--preprocess",
    metavar="KEY=VALUE,...|FILE.toml",
    help="How --eval images become inputs: resize=N|WxH, crop=N|WxH, mean=M[/G/B], "
    "std=S[/G/B], order=rgb|bgr, layout=auto|nhwc|nchw, dtype=float32|float16|uint8|int8, "
    "resample=bilinear|nearest|bicubic|box|lanczos.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME[:OPTIONS]",
    help="Quality metric (repeatable; the first is primary): top1, topk:k=5, auc[:class=C], "
    "precision|recall|f1[:threshold=T], mae, rmse, snr, cosine, max_abs, mean_abs, "
    "agreement, or module.path:function. Default: top1 with labels.",
)
@store_option
@click.option("--resume", "resume_id", help="Finish an interrupted run: skip its stored cells.")
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for another harness process to release the device.",
)
@click.option("--avd", help="Start this AVD for the run (needs ANDROID_SDK_ROOT).")
@click.option("--keep-emulator", is_flag=True, help="Leave the --avd emulator running afterwards.")
@json_option("the run document")
@_android_options
def run(
    models,
    device,
    variants,
    delegates,
    threads,
    batches,
    concurrency,
    sustained,
    together,
    runs,
    min_secs,
    warmup,
    rounds,
    precision,
    max_time,
    cell_timeout,
    eval_path,
    preprocess,
    metrics,
    store_url,
    resume_id,
    lock_wait,
    avd,
    keep_emulator,
    as_json,
    **android,
) -> None:
    """Time MODELS (convert directories or .tflite files) on a device; store every sample.

    Several models share every round (A/B in one run): judge them with
    `harness compare RUN --a NAME --b NAME`. With --together they are served at once
    instead, each also alone beside it: what running them side by side costs."""
    from harness.data.recipe import load_recipe
    from harness.devices.lock import device_lock
    from harness.devices.registry import open_device
    from harness.lab.plan import parse_batches, parse_concurrency, parse_delegates, parse_threads
    from harness.measure.metrics import metric_warnings
    from harness.report.console import render_run
    from harness.report.document import run_document
    from harness.run import RunSpec, check_eval, parse_metrics, plan_run, run_sweep
    from harness.runners.python_runner import TimingConfig
    from harness.store.store import Store

    store = Store(store_url)
    if resume_id:
        spec = RunSpec.from_dict(store.get_run(resume_id).config)
    elif not models:
        raise HarnessError(
            "give a MODEL (a convert output directory or a .tflite) or --resume RUN_ID"
        )
    else:
        sustained_s = _sustained(sustained, concurrency) if sustained else None
        if sustained_s:  # one long round; the device's watchdog must allow it
            rounds, cell_timeout = 1, max(cell_timeout, sustained_s + 120.0)
        spec = RunSpec(
            model=models[0],
            more_models=tuple(models[1:]),
            device=device,
            variants=tuple(v.strip() for v in variants.split(",") if v.strip())
            if variants
            else None,
            delegates=parse_delegates(delegates),
            threads=parse_threads(threads),
            batches=parse_batches(batches),
            concurrency=parse_concurrency(concurrency) if concurrency else (1,),
            load=concurrency is not None,
            sustained_s=sustained_s,
            together=together,
            timing=TimingConfig(
                runs=runs,
                min_secs=min_secs,
                warmup=warmup,
                rounds=rounds,
                cell_timeout_s=cell_timeout,
                **_precision(precision, max_time),
            ),
            eval_path=eval_path,
            runner_options=_runner_options(android),
            metrics=metrics,
            preprocess=load_recipe(preprocess),
        )
    parse_metrics(spec.metrics)  # an unknown metric is exit 2 before any device is opened
    planned, cells = plan_run(spec)
    check_eval(spec, planned, parse_metrics(spec.metrics))  # bad eval data too
    with contextlib.ExitStack() as stack:
        name = spec.device
        if avd:  # start the emulator; it is stopped when this block ends (unless kept)
            from harness.devices.emulator import launched_emulator

            if spec.device not in ("emulator", "local"):
                raise HarnessError("--avd starts an emulator: use it with --device emulator")
            name = stack.enter_context(launched_emulator(avd, keep_emulator, progress=say))
        dev = open_device(name)
        stack.callback(dev.close)
        if spec.device == "emulator" and not resume_id:  # record which emulator it was
            spec = dataclasses.replace(spec, device=dev.name)
        stack.enter_context(device_lock(dev.name, wait_s=lock_wait))
        advance = stack.enter_context(_progress(len(cells), not as_json))
        said: set[str] = set()

        def on_cell(record) -> None:
            advance(record)
            for line in metric_warnings(record, said):  # a metric that failed: once each
                click.echo(line, err=True)

        run_id = run_sweep(
            spec, store, dev, run_id=resume_id, on_cell=on_cell, command=" ".join(sys.argv)
        )
    records = store.cells(run_id)
    if as_json:
        echo_json(run_document(run_id, records, store.get_run(run_id).status))
    else:
        render_run(run_id, records)
        click.echo(f"stored in {store.display_url} as run {run_id}")
    if records and not any(r.status == "ok" for r in records):
        counts = Counter(r.status for r in records)
        raise NothingMeasured(
            f"run {run_id} measured nothing: "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            + " (each row's reason says why)"
        )


def _precision(precision: str | None, max_time: str | None) -> dict:
    """--precision and --max-time as TimingConfig fields, validated (one line, exit 2)."""
    from harness.measure.compare import parse_percent

    if precision is None:
        if max_time is not None:
            raise HarnessError("--max-time bounds --precision: give --precision too")
        return {}
    try:
        target = parse_percent(precision)
    except HarnessError:
        target = -1.0
    if not 0.001 <= target <= 0.5:
        raise HarnessError(f"--precision {precision!r} must be a percentage from 0.1% to 50%")
    seconds = parse_seconds(max_time) if max_time else 600.0
    if not 1 <= seconds <= 7 * 86400:
        raise HarnessError(f"--max-time {max_time!r} must be from 1s to 7 days")
    return {"precision": target, "max_time_s": seconds}


def _sustained(text: str, concurrency: str | None) -> float:
    """--sustained as seconds (harness.lab.plan.parse_sustained; one line, exit 2)."""
    from harness.lab.plan import parse_sustained

    try:
        return parse_sustained(text, "--concurrency" if concurrency else None)
    except HarnessError as exc:
        raise HarnessError(f"--sustained {exc}") from None


def _runner_options(android: dict) -> dict:
    """The Android (benchmark_model) options of `harness run`, validated."""
    from harness.runners.benchmark_model.flags import BenchmarkOptions

    return BenchmarkOptions(**android).to_dict()


def _progress(total: int, enabled: bool):
    """A transient progress bar on stderr (only on a terminal); yields an advance callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)

    @contextlib.contextmanager
    def bar():
        if not (enabled and err.is_terminal):
            yield lambda _record: None
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("measuring", total=total)

            def advance(record) -> None:
                c = record.cell
                progress.update(task, advance=1, description=c.setting)

            yield advance

    return bar()
