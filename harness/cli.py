"""The click layer: parse options into specs, call plain functions, render results."""

from __future__ import annotations

import sys

import click

from harness import __version__
from harness.errors import HarnessError


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
    except click.exceptions.Abort:
        click.echo("harness: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
