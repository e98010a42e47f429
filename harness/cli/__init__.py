"""The click layer: parse options into specs, call plain functions, render results.

One module per command (or group); this one holds the group and the entry point that
turns user errors into one stderr line and an exit code."""

from __future__ import annotations

import sys

import click

from harness import __version__
from harness.cli.compare import compare
from harness.cli.convert import convert
from harness.cli.devices import devices, serve_device, tools
from harness.cli.lab import lab
from harness.cli.report import recommend, report
from harness.cli.run import run
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


for _command in (convert, run, compare, devices, tools, serve_device, report, recommend, lab):
    cli.add_command(_command)
