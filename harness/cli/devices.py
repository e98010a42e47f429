"""Device commands: `devices`, `tools`, `serve-device`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.cli.options import abi_choice, echo_binary, echo_json, json_option
from harness.errors import HarnessError


@click.command()
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


@click.group()
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
    echo_binary(b)


@tools.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--abi", required=True, type=abi_choice)
@tool_choice
def tools_add(path, abi, tool) -> None:
    """Register a binary (or NPU library) you already have (offline labs)."""
    from harness.runners.benchmark_model.tools import add

    b = add(path, abi, tool=tool)
    echo_binary(b)


@tools.command("list")
@json_option("the cache")
def tools_list(as_json) -> None:
    """The cached binaries per ABI."""
    from harness.runners.benchmark_model.tools import list_binaries, tools_dir

    found = list_binaries()
    if as_json:
        echo_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo(f"no tools cached in {tools_dir()} (see `harness tools fetch --help`)")
    for b in found:
        name = f"  {b.path.name}" if b.tool == "litert-npu" else ""
        click.echo(f"{b.tool:10} {b.abi:12} {b.sha256[:12]} {b.size:>10}  {b.source}{name}")


@click.command("serve-device")
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
