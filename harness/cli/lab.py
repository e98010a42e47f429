"""`harness lab`: run a night, history, Ray resources."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.cli.options import echo_json, json_option, say, store_option
from harness.errors import HarnessError


@click.group()
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
    done = run_lab(config, options, progress=say)
    if as_json:
        echo_json(night_document(done.result))
    else:
        click.echo(render_markdown(done.result), nl=False)
    say(f"summaries: {', '.join(str(p) for p in done.outputs)}")
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
        echo_json(history.to_dict())
    else:
        render_history(history, Console(highlight=False))


@lab.command("resources")
@click.argument("devices", nargs=-1, required=True)
def lab_resources(devices) -> None:
    """The Ray --resources JSON that offers DEVICES from this host."""
    from harness.lab.executors import device_resource

    click.echo(json.dumps({device_resource(d): 1 for d in devices}))
