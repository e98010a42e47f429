"""Device names -> Device objects."""

from __future__ import annotations

from harness.devices.base import Device
from harness.devices.local import LocalDevice
from harness.errors import HarnessError


def open_device(name: str) -> Device:
    """Open the device a user named with --device."""
    if name == "local":
        return LocalDevice()
    raise HarnessError(
        f"unknown device {name!r}: this harness reaches 'local' only (see `harness devices`)"
    )
