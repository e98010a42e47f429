"""USB devices through adb-shell (no adb server): there is no USB device here, so the
test checks the message a user gets, with or without the optional usb extra."""

from __future__ import annotations

from cli_helpers import harness


def test_usb_device_without_extra_or_device_is_one_clear_line(variants, store_url):
    proc = harness(
        "run", str(variants.manifest_path.parent), "--device", "usb:NOSUCH", "--store", store_url
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "harness[usb]" in proc.stderr or "no USB ADB device found" in proc.stderr
