"""Emulator lifecycle: boot wait against a booting daemon announced as an emulator.

No Android emulator can run here (no SDK, no KVM). The boot-wait logic runs against the
real daemon with a boot delay, announced to a real adb server the way an emulator
announces itself. The launcher is tested with a test double: a fake `emulator`
executable in a temporary SDK directory that answers `-list-avds` and otherwise
starts `harness serve-device --announce-emulator`, the only part that stands in for
the real program.
"""

from __future__ import annotations

import os
import signal

import pytest

from harness.adbd.server import announce_emulator
from harness.devices import emulator
from harness.devices.adb_server import ServerTransport, list_devices
from harness.errors import DeviceError


def test_wait_for_boot_waits_for_boot_completed(server_env, start_daemon):
    daemon = start_daemon(boot_delay_s=1.5)
    announce_emulator(server_env.port, daemon.port)
    said: list[str] = []
    serial = emulator.wait_for_boot(None, set(), timeout=30, say=said.append)
    assert serial == f"emulator-{daemon.port - 1}"
    assert ServerTransport(serial).shell("getprop sys.boot_completed", 10).stdout == "1\n"
    assert any("appeared" in s for s in said) and any("booted in" in s for s in said)


def test_wait_for_boot_times_out_clearly(server_env, start_daemon):
    daemon = start_daemon(boot_delay_s=600)
    announce_emulator(server_env.port, daemon.port)
    with pytest.raises(DeviceError, match=r"emulator-\d+ did not finish booting within 2s"):
        emulator.wait_for_boot(None, set(), timeout=2, say=lambda _: None)


def launch(avd: str) -> None:
    with emulator.launched_emulator(avd):
        pass


def test_no_sdk_says_what_to_install(monkeypatch):
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    with pytest.raises(DeviceError, match="ANDROID_HOME are unset.*sdkmanager"):
        launch("pixel")


def test_sdk_without_emulator_or_avd(monkeypatch, tmp_path, fake_sdk):
    monkeypatch.setenv("ANDROID_SDK_ROOT", str(tmp_path))  # an SDK dir with no emulator/
    with (
        pytest.raises(DeviceError, match="no emulator in the SDK"),
        emulator.launched_emulator("pixel"),
    ):
        pass
    monkeypatch.setenv("ANDROID_SDK_ROOT", str(fake_sdk))
    with (
        pytest.raises(DeviceError, match=r"no AVD named 'pixel' \(available: test_avd\)"),
        emulator.launched_emulator("pixel"),
    ):
        pass


def test_launch_runs_then_stops_the_emulator(server_env, fake_sdk):
    said: list[str] = []
    with emulator.launched_emulator("test_avd", progress=said.append, boot_timeout=60) as serial:
        assert serial.startswith("emulator-")
        out = ServerTransport(serial).shell("getprop ro.product.model", 10)
        assert out.stdout == "fake_emu\n"
    assert any("stopping" in s for s in said)
    states = {d.serial: d.state for d in list_devices()}
    assert states.get(serial, "gone") != "device"


def test_keep_emulator_leaves_it_running(server_env, fake_sdk):
    with emulator.launched_emulator("test_avd", keep=True, boot_timeout=60) as serial:
        pass
    pid = int((fake_sdk.parent / "emulator.pid").read_text())
    try:
        assert ServerTransport(serial).shell("echo up", 10).stdout == "up\n"
    finally:
        os.kill(pid, signal.SIGTERM)  # the fake emulator this test started
