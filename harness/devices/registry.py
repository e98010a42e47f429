"""Device names -> Device objects."""

from __future__ import annotations

import re

from harness.devices.base import Device
from harness.devices.local import LocalDevice
from harness.errors import HarnessError

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


def open_device(name: str) -> Device:
    """Open the device a user named with --device: local, or HOST:PORT (direct ADB)."""
    if name == "local":
        return LocalDevice()
    if m := _HOST_PORT.match(name):
        from harness.devices.adb_direct import DirectTransport
        from harness.devices.remote import AdbDevice

        port = int(m["port"])
        if not 0 < port < 65536:
            raise HarnessError(f"bad port in device {name!r}")
        transport = DirectTransport(m["host"].strip("[]"), port)
        transport.connect()
        return AdbDevice(transport)
    raise HarnessError(f"unknown device {name!r}: use 'local' or HOST:PORT (see `harness devices`)")
