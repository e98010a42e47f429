"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import math

import click

store_option = click.option(
    "--store", "store_url", help="Results store URL (default: $HARNESS_STORE or SQLite)."
)
abi_choice = click.Choice(["arm64-v8a", "armeabi-v7a", "x86_64"])


def json_option(what: str):
    """`--json` (as_json): print WHAT as JSON instead of the terminal view."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def echo_json(doc) -> None:
    """Print a document as indented JSON on stdout."""
    click.echo(json.dumps(doc, indent=2))


def echo_binary(b) -> None:
    """One line for a cached device tool."""
    click.echo(f"{b.tool} {b.abi}: {b.path} ({b.size} bytes, sha256 {b.sha256}) from {b.source}")


def say(msg: str) -> None:
    """A progress line on stderr (stdout stays the command's result)."""
    click.echo(f"  {msg}", err=True)


def parse_seconds(text: str) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds; NaN when unreadable (caught by the range)."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    scale = units.get(text[-1:])
    try:
        return float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        return math.nan
