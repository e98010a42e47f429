"""The click layer: parse options into specs, call plain functions, render results."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path

import click

from harness import __version__
from harness.errors import EXIT_USER_ERROR, HarnessError


@click.group()
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """On-device inference benchmarking: convert, run, report, compare."""


def main() -> None:
    """Console entry point: user errors become one stderr line and an exit code."""
    try:
        cli.main(standalone_mode=False)
    except HarnessError as exc:
        click.echo(f"harness: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # click's own option errors: one line too
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"harness: error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Abort:
        click.echo("harness: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


store_option = click.option(
    "--store", "store_url", help="Results store URL (default: $HARNESS_STORE or SQLite)."
)
abi_choice = click.Choice(["arm64-v8a", "armeabi-v7a", "x86_64"])


def json_option(what: str):
    """`--json` (as_json): print WHAT as JSON instead of the terminal view."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def _echo_json(doc) -> None:
    click.echo(json.dumps(doc, indent=2))


def _echo_binary(b) -> None:
    click.echo(f"{b.tool} {b.abi}: {b.path} ({b.size} bytes, sha256 {b.sha256}) from {b.source}")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the .tflite variants and manifest.json.",
)
@click.option(
    "--variants",
    default="fp32,fp16,dynamic,int8",
    show_default=True,
    help="Comma-separated: fp32, fp16, dynamic, int8, int16x8, w8, w4.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help=".npz with 'x': representative inputs for int8 and int16x8.",
)
@click.option("--int8-io", is_flag=True, help="int8 variant takes and returns int8 tensors.")
@json_option("the manifest")
def convert(source, out_dir, variants, calibration, int8_io, as_json) -> None:
    """Convert a Keras/SavedModel/ONNX/.tflite SOURCE into TFLite variants."""
    from harness.convert.pipeline import ConvertSpec, convert_model, manifest_dict
    from harness.convert.recipes import parse_variants
    from harness.report.console import render_convert

    spec = ConvertSpec(source, out_dir, parse_variants(variants), calibration, int8_io)
    say = (lambda _: None) if as_json else (lambda msg: click.echo(f"  {msg}", err=True))
    result = convert_model(spec, progress=say)
    if as_json:
        _echo_json(manifest_dict(result))
    else:
        render_convert(result)


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


@cli.command()
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
    `harness compare RUN --a NAME --b NAME`."""
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
            name = stack.enter_context(launched_emulator(avd, keep_emulator, progress=_say))
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
        _echo_json(run_document(run_id, records, store.get_run(run_id).status))
    else:
        render_run(run_id, records)
        click.echo(f"stored in {store.display_url} as run {run_id}")


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
    seconds = _seconds(max_time) if max_time else 600.0
    if not 1 <= seconds <= 7 * 86400:
        raise HarnessError(f"--max-time {max_time!r} must be from 1s to 7 days")
    return {"precision": target, "max_time_s": seconds}


def _sustained(text: str, concurrency: str | None) -> float:
    """--sustained as seconds, at least MIN_SUSTAINED_S (one line, exit 2 otherwise)."""
    from harness.measure.sustained import MIN_SUSTAINED_S

    seconds = _seconds(text)
    if not seconds >= MIN_SUSTAINED_S or seconds > 86400:
        raise HarnessError(
            f"--sustained {text!r} must be from {MIN_SUSTAINED_S:g}s to 24h "
            "(shorter runs say nothing about heat)"
        )
    if concurrency:
        raise HarnessError("--sustained runs one instance per cell: drop --concurrency")
    return seconds


def _seconds(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds; NaN when unreadable (caught by the range)."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    try:
        return float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        return math.nan


def _runner_options(android: dict) -> dict:
    """The Android (benchmark_model) options of `harness run`, validated."""
    from harness.runners.benchmark_model.flags import BenchmarkOptions

    return BenchmarkOptions(**android).to_dict()


def _progress(total: int, enabled: bool):
    """A transient progress bar on stderr (only on a terminal); yields an advance callback."""
    import contextlib

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


@cli.command()
@click.argument("baseline")
@click.argument("candidate", required=False)
@click.option("--a", "model_a", help="With one RUN: the baseline model of an A/B run.")
@click.option("--b", "model_b", help="With one RUN: the candidate model of an A/B run.")
@store_option
@click.option(
    "--latency-threshold",
    default="5%",
    show_default=True,
    help="Smallest latency change that counts, in percent (the % sign is optional).",
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
    help="Run-to-run SD of a whole run's level, added to two-run intervals (paired A/B "
    "needs none).",
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
    model --a inside one run (round by round); exit 1 on a regression."""
    from harness.errors import EXIT_REGRESSION
    from harness.measure.compare import (
        CompareConfig,
        compare_models,
        compare_runs,
        parse_percent,
    )
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
        result = compare_runs(
            store.cells(baseline), store.cells(candidate), config, baseline, candidate
        )
    if fmt == "json":
        _echo_json(comparison_document(result))
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


def _say(msg: str) -> None:
    click.echo(f"  {msg}", err=True)


@cli.command()
@json_option("the devices")
@click.option(
    "--connect",
    "addresses",
    multiple=True,
    metavar="HOST:PORT",
    help="Also reach this address directly (repeatable; or $HARNESS_DEVICES).",
)
@click.option("--start-server", is_flag=True, help="Start the adb server if it is not running.")
def devices(as_json, addresses, start_server) -> None:
    """List every device: the adb server's, direct HOST:PORT addresses, and local."""
    from harness.devices.discovery import discover, format_devices

    found = discover(addresses, start_server=start_server)
    click.echo(json.dumps(found.to_dict(), indent=2) if as_json else format_devices(found))


@cli.group()
def tools() -> None:
    """Device-side tools per kind and ABI in the per-user cache: TFLite's benchmark_model
    (tflite), LiteRT's CompiledModel benchmark (litert), NPU vendor libraries (litert-npu)."""


tool_choice = click.option(
    "--tool",
    type=click.Choice(["tflite", "litert", "litert-npu"]),
    default="tflite",
    show_default=True,
    help="tflite: benchmark_model; litert: LiteRT's CompiledModel benchmark (gpu/npu cells); "
    "litert-npu: a vendor library for npu cells.",
)


@tools.command("fetch")
@click.option(
    "--abi",
    type=abi_choice,
    default="arm64-v8a",
    show_default=True,
)
@tool_choice
@click.option("--url", help="Download from here instead of the official location.")
@click.option("--sha256", help="Expected checksum: a mismatch is rejected, the cache untouched.")
def tools_fetch(abi, tool, url, sha256) -> None:
    """Download the binary for ABI; records its sha256 and size."""
    from harness.runners.benchmark_model.tools import fetch

    b = fetch(abi, url, sha256, tool=tool)
    _echo_binary(b)


@tools.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--abi", required=True, type=abi_choice)
@tool_choice
def tools_add(path, abi, tool) -> None:
    """Register a binary (or NPU library) you already have (offline labs)."""
    from harness.runners.benchmark_model.tools import add

    b = add(path, abi, tool=tool)
    _echo_binary(b)


@tools.command("list")
@json_option("the cache")
def tools_list(as_json) -> None:
    """The cached binaries per ABI."""
    from harness.runners.benchmark_model.tools import list_binaries, tools_dir

    found = list_binaries()
    if as_json:
        _echo_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo(f"no tools cached in {tools_dir()} (see `harness tools fetch --help`)")
    for b in found:
        name = f"  {b.path.name}" if b.tool == "litert-npu" else ""
        click.echo(f"{b.tool:10} {b.abi:12} {b.sha256[:12]} {b.size:>10}  {b.source}{name}")


@cli.command("serve-device")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5555, show_default=True, help="TCP port; 0 = any.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory that is '/' on the device (default: a temporary directory).",
)
@click.option(
    "--props",
    "props_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Device properties: JSON object or key=value lines.",
)
@click.option(
    "--authorized-keys",
    type=click.Path(dir_okay=False, path_type=Path),
    help="adb_keys file (adbkey.pub lines) of hosts allowed to connect.",
)
@click.option("--no-auth", is_flag=True, help="Accept any host (loopback addresses only).")
@click.option(
    "--maxdata",
    type=click.Choice(["4096", "262144", "1048576"]),
    default="1048576",
    show_default=True,
    help="Largest ADB packet payload to negotiate.",
)
@click.option("--boot-delay", type=float, default=0.0, help="Seconds until sys.boot_completed=1.")
@click.option(
    "--announce-emulator",
    "adb_server_port",
    type=int,
    help="Register with the adb server on this port as emulator-<port-1>.",
)
@click.option(
    "--inject-fault",
    "fault_specs",
    multiple=True,
    metavar="SPEC",
    help="Fail on purpose (testing), e.g. drop:push:nth=2:after=65536; see harness/adbd/faults.py.",
)
@click.option(
    "--python",
    "python",
    metavar="PATH",
    help="Interpreter the board runs the runner with (default: the one running this daemon).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log connections and streams.")
def serve_device(
    host: str,
    port: int,
    root: Path | None,
    props_file: Path | None,
    authorized_keys: Path | None,
    no_auth: bool,
    maxdata: str,
    boot_delay: float,
    adb_server_port: int | None,
    fault_specs: tuple[str, ...],
    python: str | None,
    verbose: bool,
) -> None:
    """Make this machine an ADB device (adb connect HOST:PORT).

    push/pull/ls are confined to --root; shell commands are NOT sandboxed: they run on
    this machine as the current user (cwd --root, $ADBD_ROOT set to it).
    """
    import logging

    from harness.adbd.faults import FaultSpecError, parse_fault
    from harness.adbd.props import PropsError, load_props_file, resolve_python
    from harness.adbd.server import DaemonConfig, check_authorized_keys, serve_until_stopped

    if no_auth == (authorized_keys is not None):
        raise HarnessError("give exactly one of --authorized-keys FILE or --no-auth")
    try:
        props = load_props_file(props_file) if props_file else {}
        faults = tuple(parse_fault(spec) for spec in fault_specs)
        python = resolve_python(python) if python else None
    except (PropsError, FaultSpecError) as exc:
        raise HarnessError(str(exc)) from exc
    if authorized_keys is not None and authorized_keys.is_file():
        for warning in check_authorized_keys(authorized_keys):
            click.echo(warning, err=True)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    config = DaemonConfig(
        host=host,
        port=port,
        root=root,
        props=props,
        authorized_keys=authorized_keys,
        maxdata=int(maxdata),
        boot_delay_s=boot_delay,
        announce_to_adb_server=adb_server_port,
        faults=faults,
        python=python,
    )
    serve_until_stopped(config, lambda line: click.echo(line, err=False))


@cli.command()
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


@cli.command()
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
@store_option
@json_option("the picks")
def recommend(
    run_id, max_latency, min_metric, metric, metric_tie, min_throughput, store_url, as_json
) -> None:
    """Per device, the best cell of RUN_ID within a latency budget; exit 1 if none is."""
    from rich.console import Console

    from harness.report.commands import recommend_run
    from harness.report.recommend import Budget, parse_latency
    from harness.store.store import Store

    budget = Budget(parse_latency(max_latency), min_metric, metric, metric_tie, min_throughput)
    code = recommend_run(Store(store_url), run_id, budget, as_json, Console(highlight=False))
    if code:
        sys.exit(code)


@cli.group()
def lab() -> None:
    """The nightly device lab: `lab run lab.toml`, `lab history`."""


@lab.command("run")
@click.argument("lab_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--night", help="Night label (default: today's UTC date); tags its runs.")
@click.option("--resume", is_flag=True, help="Finish the night: measure only missing cells.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="With --executor ray: the cluster (default: start a local one).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--store", "store_url", help="Results store URL (overrides the lab file).")
@json_option("the night's summary")
def lab_run(lab_file, night, resume, executor, address, out_dir, store_url, as_json) -> None:
    """Run one night of the lab in LAB_FILE; exit 1 on a regression or failed cell."""
    from harness.lab.config import load_lab_config
    from harness.lab.job import LabOptions, run_lab
    from harness.lab.summary import night_document, render_markdown

    config = load_lab_config(lab_file)
    options = LabOptions(night, resume, executor, address, out_dir, store_url, " ".join(sys.argv))
    done = run_lab(config, options, progress=_say)
    if as_json:
        _echo_json(night_document(done.result))
    else:
        click.echo(render_markdown(done.result), nl=False)
    _say(f"summaries: {', '.join(str(p) for p in done.outputs)}")
    if done.result.all_unreachable:
        raise HarnessError("every device of the lab was unreachable")
    sys.exit(done.result.exit_code)


@lab.command("history")
@click.option("--model", required=True, help="Model name (as in the cells).")
@click.option("--device", required=True, help="Device serial (as in the cells).")
@click.option("--lab", "lab_name", help="Lab name (needed when several labs ran the model).")
@click.option("--last", type=click.IntRange(min=2), default=60, show_default=True)
@store_option
@json_option("the history")
def lab_history(model, device, lab_name, last, store_url, as_json) -> None:
    """Each cell of MODEL on DEVICE night by night, with change points marked."""
    from rich.console import Console

    from harness.lab.history import load_history, render_history
    from harness.store.store import Store

    history = load_history(Store(store_url), model, device, lab_name, last)
    if as_json:
        _echo_json(history.to_dict())
    else:
        render_history(history, Console(highlight=False))


@lab.command("resources")
@click.argument("devices", nargs=-1, required=True)
def lab_resources(devices) -> None:
    """The Ray --resources JSON that offers DEVICES from this host."""
    from harness.lab.executors import device_resource

    click.echo(json.dumps({device_resource(d): 1 for d in devices}))


if __name__ == "__main__":
    main()
