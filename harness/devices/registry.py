"""Device names -> Device objects.

`local`; `emulator` (the one running emulator the adb server lists); any serial the adb
server lists (reached through the server); HOST:PORT not in that list (reached
directly with adb-shell).
"""

from __future__ import annotations

import re

from harness.devices.base import Device
from harness.devices.local import LocalDevice
from harness.errors import DeviceError, HarnessError

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


def open_device(name: str) -> Device:
    """Open the device a user named with --device."""
    from harness.devices.adb_server import (
        ServerNotRunning,
        ServerTransport,
        explain_state,
        list_devices,
    )
    from harness.devices.remote import AdbDevice

    if name == "local":
        return LocalDevice()
    if name == "usb" or name.startswith("usb:"):  # adb-shell over libusb, no adb server
        from harness.devices.adb_direct import UsbTransport

        transport = UsbTransport(name.partition(":")[2] or None)
        transport.connect()
        return AdbDevice(transport)
    try:
        listed = list_devices()
    except ServerNotRunning as exc:
        if name == "emulator" or not _HOST_PORT.match(name):
            raise DeviceError(f"cannot open device {name!r}: {exc}") from None
        listed = []
    if name == "emulator":
        name = _single_emulator(listed)
    entry = next((d for d in listed if d.serial == name), None)
    if entry is not None:
        if entry.state != "device":
            raise DeviceError(explain_state(entry.serial, entry.state))
        return AdbDevice(ServerTransport(entry.serial))
    if m := _HOST_PORT.match(name):
        return _open_direct(name, m["host"].strip("[]"), int(m["port"]))
    available = ", ".join(["local", *(f"{d.serial} ({d.state})" for d in listed)])
    raise HarnessError(
        f"unknown device {name!r}; available: {available} "
        "(or HOST:PORT for a direct connection; see `harness devices`)"
    )


def _single_emulator(listed) -> str:
    emulators = [d for d in listed if d.is_emulator]
    if not emulators:
        raise DeviceError(
            "no emulator is running (the adb server lists none); start one, "
            "or pass --avd NAME to have harness start it"
        )
    if len(emulators) > 1:
        names = ", ".join(d.serial for d in emulators)
        raise DeviceError(f"more than one emulator is running ({names}): name one with --device")
    return emulators[0].serial


def _open_direct(name: str, host: str, port: int) -> Device:
    from harness.devices.adb_direct import DirectTransport
    from harness.devices.remote import AdbDevice

    if not 0 < port < 65536:
        raise HarnessError(f"bad port in device {name!r}")
    transport = DirectTransport(host, port)
    transport.connect()
    return AdbDevice(transport)
