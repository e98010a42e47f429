"""`harness devices`: every device reachable from here, with the facts a sweep needs.

Three sources: the adb server's list (phones, emulators, `adb connect`ed hosts),
direct TCP addresses (--connect or $HARNESS_DEVICES, reached with adb-shell), and the
host itself (`local`). A device that is not ready (offline, unauthorized, refused) is
listed with the reason, never dropped.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from harness.devices.adb_server import (
    ServerNotRunning,
    ServerTransport,
    adb_server_port,
    explain_state,
    list_devices,
)
from harness.devices.runtime import BoardRuntime, missing_message, probe_runtime
from harness.errors import DeviceError, HarnessError

# One shell command for every core: "<index> <max kHz or empty>" per line.
CPU_SCRIPT = (
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do "
    'f=$(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null); echo "${c##*/cpu} $f"; done'
)


@dataclass(frozen=True)
class CpuCore:
    index: int
    max_freq_khz: int | None


@dataclass(frozen=True)
class DeviceFacts:
    """What `harness devices` says about one device."""

    serial: str
    transport: str  # "adb-server" | "direct" | "subprocess"
    state: str  # "device" | "offline" | "unauthorized" | "unreachable" | …
    ready: bool
    model: str = ""
    abi: str = ""
    sdk: str = ""  # Android SDK level, or "linux"
    emulator: bool = False
    fingerprint: str = ""
    cpus: tuple[CpuCore, ...] = ()
    note: str = ""  # why it is not ready, or what failed while reading facts
    runtime: BoardRuntime | None = None  # linux class: the runner's Python and TFLite runtime

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cpus"] = [asdict(c) for c in self.cpus]
        d["runtime"] = self.runtime.to_dict() if self.runtime else None
        return d


@dataclass(frozen=True)
class Discovery:
    devices: list[DeviceFacts]
    server: str  # one line about the adb server: running on port N / not running
    server_running: bool = False

    def to_dict(self) -> dict:
        return {
            "adb_server": {"running": self.server_running, "status": self.server},
            "devices": [d.to_dict() for d in self.devices],
        }


def parse_cpus(text: str) -> tuple[CpuCore, ...]:
    """Parse CPU_SCRIPT output; lines that are not `<int> [<int>]` are ignored."""
    cores = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].isdigit():
            continue
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        cores.append(CpuCore(int(parts[0]), freq))
    return tuple(sorted(cores, key=lambda c: c.index))


def is_emulator(props: dict[str, str], serial: str = "") -> bool:
    """ro.kernel.qemu (older images) or ro.boot.qemu (newer), or an emulator-N serial."""
    qemu = props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1"
    return qemu or serial.startswith("emulator-")


def facts_of(device, serial: str, transport: str) -> DeviceFacts:
    """Facts of a ready ADB device (an AdbDevice): props plus one CPU command."""
    props = device.props()
    cls = props.get("ro.harness.device_class", "")
    sdk = props.get("ro.build.version.sdk", "")
    cpus = device.shell(["sh", "-c", CPU_SCRIPT], timeout=15.0)
    linux = cls == "linux" or not sdk
    runtime, note = _runtime_of(device) if linux else (None, "")
    return DeviceFacts(
        serial=serial,
        transport=transport,
        state="device",
        ready=True,
        model=props.get("ro.product.model", ""),
        abi=props.get("ro.product.cpu.abi", ""),
        sdk="linux" if linux else sdk,
        emulator=is_emulator(props, serial),
        fingerprint=props.get("ro.build.fingerprint", ""),
        cpus=parse_cpus(cpus.stdout),
        note=note,
        runtime=runtime,
    )


def _runtime_of(device) -> tuple[BoardRuntime | None, str]:
    """The runner's preflight on a linux-class device, and a note when it is not ready."""
    try:
        rt = probe_runtime(device)
    except DeviceError as exc:
        return None, f"runtime check failed: {exc}"
    name = getattr(device, "name", "")
    return rt, "" if rt.ready else missing_message(name, rt).partition(": ")[2]


def local_facts() -> DeviceFacts:
    """Facts of the host itself (`--device local`)."""
    from harness.adbd.props import abi_for_machine
    from harness.devices.local import LocalDevice

    cpus = subprocess.run(["sh", "-c", CPU_SCRIPT], capture_output=True, text=True, timeout=15)
    local = LocalDevice()
    try:
        runtime, note = _runtime_of(local)
    finally:
        local.close()
    return DeviceFacts(
        serial="local",
        transport="subprocess",
        state="device",
        ready=True,
        model=platform.node(),
        abi=abi_for_machine(platform.machine()),
        sdk="linux",
        fingerprint=f"{platform.system()}/{platform.release()}/{platform.version()}",
        cpus=parse_cpus(cpus.stdout),
        note=note,
        runtime=runtime,
    )


def _not_ready(serial: str, transport: str, state: str, note: str) -> DeviceFacts:
    return DeviceFacts(serial, transport, state, False, note=note)


def server_facts(port: int | None = None) -> tuple[list[DeviceFacts], str, bool]:
    """Facts of every device the adb server lists, and a line about the server."""
    from harness.devices.remote import AdbDevice

    port = port or adb_server_port()
    try:
        listed = list_devices(port)
    except ServerNotRunning:
        return [], f"adb server not running (port {port}); start it with `adb start-server`", False
    out = []
    for entry in listed:
        if entry.state != "device":
            out.append(
                _not_ready(
                    entry.serial,
                    "adb-server",
                    entry.state,
                    explain_state(entry.serial, entry.state),
                )
            )
            continue
        try:
            out.append(
                facts_of(AdbDevice(ServerTransport(entry.serial, port)), entry.serial, "adb-server")
            )
        except DeviceError as exc:
            out.append(_not_ready(entry.serial, "adb-server", "error", str(exc)))
    return out, f"adb server on port {port}: {len(listed)} device(s)", True


def direct_facts(address: str) -> DeviceFacts:
    """Facts of a HOST:PORT reached directly with adb-shell."""
    from harness.devices.adb_direct import DirectTransport
    from harness.devices.remote import AdbDevice

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise HarnessError(f"not a HOST:PORT address: {address!r}")
    transport = DirectTransport(host.strip("[]"), int(port))
    try:
        transport.connect()
        return facts_of(AdbDevice(transport), address, "direct")
    except DeviceError as exc:
        state = "unauthorized" if "unauthorized" in str(exc) else "unreachable"
        return _not_ready(address, "direct", state, str(exc))
    finally:
        transport.close()


def configured_addresses(connect: Iterable[str] = ()) -> list[str]:
    """--connect addresses, then $HARNESS_DEVICES (comma-separated), without repeats."""
    env = [a.strip() for a in os.environ.get("HARNESS_DEVICES", "").split(",")]
    seen: dict[str, None] = {}
    for a in [*connect, *env]:
        if a:
            seen.setdefault(a, None)
    return list(seen)


def start_adb_server(port: int | None = None) -> None:
    """`adb start-server` (only when the user asked for it)."""
    adb = shutil.which("adb")
    if adb is None:
        raise HarnessError(
            "cannot start an adb server: `adb` is not installed "
            "(apt-get install adb, or Android SDK platform-tools)"
        )
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(port or adb_server_port()))
    subprocess.run([adb, "start-server"], env=env, capture_output=True, timeout=30, check=False)


def discover(
    connect: Iterable[str] = (), port: int | None = None, start_server: bool = False
) -> Discovery:
    """Every device: adb server list, direct addresses not already listed there, local."""
    if start_server:
        start_adb_server(port)
    devices, server_line, running = server_facts(port)
    listed = {d.serial for d in devices}
    devices += [direct_facts(a) for a in configured_addresses(connect) if a not in listed]
    devices.append(local_facts())
    return Discovery(devices, server_line, running)


def format_devices(found: Discovery) -> str:
    """A plain-text table, one device a line, then the adb server status."""
    rows = [
        ("SERIAL", "TRANSPORT", "STATE", "MODEL", "ABI", "SDK", "EMU", "CPUS", "PYTHON", "RUNTIME")
    ]
    notes = []
    for d in found.devices:
        rows.append(
            (
                d.serial,
                d.transport,
                d.state if d.ready else f"{d.state} (not ready)",
                d.model,
                d.abi,
                d.sdk,
                "yes" if d.emulator else "no",
                _cpu_summary(d.cpus),
                _python_summary(d.runtime),
                d.runtime.summary() if d.runtime else "",
            )
        )
        if d.note:
            notes.append(f"  {d.serial}: {d.note}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([*lines, *notes, found.server])


def _python_summary(rt: BoardRuntime | None) -> str:
    """`/usr/bin/python3 (3.11.2)`: the interpreter the runner runs with on the device."""
    if rt is None:
        return ""
    return f"{rt.python} ({rt.python_version})" if rt.python_version else rt.python


def _cpu_summary(cpus: tuple[CpuCore, ...]) -> str:
    """`8 (4x1.80 GHz, 4x2.40 GHz)`, or just the count when frequencies are unknown."""
    if not cpus:
        return ""
    groups: dict[int | None, int] = {}
    for c in cpus:
        groups[c.max_freq_khz] = groups.get(c.max_freq_khz, 0) + 1
    known = [(f, n) for f, n in sorted(groups.items(), key=lambda x: x[0] or 0) if f]
    if not known:
        return str(len(cpus))
    return f"{len(cpus)} ({', '.join(f'{n}x{f / 1e6:.2f} GHz' for f, n in known)})"
