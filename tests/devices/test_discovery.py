"""`harness devices`, device facts and snapshots, and `harness run` through the adb server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import cell_shapes, harness

from harness.adbd.keys import generate_adb_keypair
from harness.adbd.server import announce_emulator
from harness.devices.adb_server import ServerTransport
from harness.devices.discovery import parse_cpus
from harness.devices.local import LocalDevice
from harness.devices.remote import AdbDevice
from harness.devices.snapshot import parse_dumpsys_battery, parse_thermal_status, snapshot


def sysfs_cpu_count() -> int:
    return len(list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")))


def test_devices_json_lists_every_kind(server_env, start_daemon, tmp_path):
    emu = start_daemon(props={"ro.kernel.qemu": "1", "ro.product.model": "emu_model"})
    announce_emulator(server_env.port, emu.port)
    emu_serial = f"emulator-{emu.port - 1}"
    connected = start_daemon(props={"ro.build.fingerprint": "harness/board/1:user"})
    server_env.ok("connect", connected.serial)
    locked = start_daemon(
        authorized_keys=generate_adb_keypair(tmp_path / "k" / "adbkey").public_key
    )
    server_env.run("connect", locked.serial, timeout=30)
    direct = start_daemon()
    server_env.wait_for_state(emu_serial, "device")
    server_env.wait_for_state(locked.serial, "unauthorized")

    result = harness("devices", "--json", "--connect", direct.serial)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["adb_server"]["running"] is True
    by_serial = {d["serial"]: d for d in doc["devices"]}
    assert set(by_serial) == {emu_serial, connected.serial, locked.serial, direct.serial, "local"}

    e = by_serial[emu_serial]
    assert (e["transport"], e["ready"], e["emulator"], e["model"]) == (
        "adb-server",
        True,
        True,
        "emu_model",
    )
    c = by_serial[connected.serial]
    assert (c["transport"], c["emulator"], c["sdk"]) == ("adb-server", False, "linux")
    assert c["fingerprint"] == "harness/board/1:user"
    assert by_serial[direct.serial]["transport"] == "direct"
    assert by_serial["local"]["transport"] == "subprocess"
    for d in (e, c, by_serial[direct.serial], by_serial["local"]):
        assert d["abi"] and d["state"] == "device"
        assert len(d["cpus"]) == sysfs_cpu_count()  # the daemon's shell sees the host's /sys
    bad = by_serial[locked.serial]
    assert (bad["state"], bad["ready"]) == ("unauthorized", False)
    assert "has not accepted this adb server's key" in bad["note"]

    table = harness("devices", env=dict(os.environ, HARNESS_DEVICES=direct.serial))
    assert table.returncode == 0, table.stderr
    assert emu_serial in table.stdout and direct.serial in table.stdout
    assert "unauthorized (not ready)" in table.stdout


def test_devices_without_a_server_lists_direct_and_local(start_daemon, tmp_path):
    from adbd.conftest import free_port

    direct = start_daemon()
    env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(free_port()), HOME=str(tmp_path))
    result = harness("devices", "--json", "--connect", direct.serial, env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["adb_server"]["running"] is False
    assert "adb server not running" in doc["adb_server"]["status"]
    assert [d["serial"] for d in doc["devices"]] == [direct.serial, "local"]
    refused = harness("devices", "--connect", f"127.0.0.1:{free_port()}", env=env)
    assert "refused" in refused.stdout and "adb server not running" in refused.stdout


def test_parse_cpus_ignores_junk():
    assert parse_cpus("1 1800000\n0 2400000\ncpu[0-9]* \n2\n") == (
        *[c for c in parse_cpus("0 2400000\n1 1800000\n")],
        parse_cpus("2")[0],
    )
    assert parse_cpus("2")[0].max_freq_khz is None


@pytest.fixture
def fake_board_env(tmp_path, monkeypatch):
    """A fake sysfs ($HARNESS_SYSFS) and a `dumpsys` on PATH, for the device shell."""
    sysfs = tmp_path / "sys"
    bat = sysfs / "class/power_supply/battery"
    bat.mkdir(parents=True)
    (bat / "capacity").write_text("87\n")
    (bat / "temp").write_text("312\n")
    zone = sysfs / "class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("45500\n")
    (zone / "type").write_text("cpu-big\n")
    cpu = sysfs / "devices/system/cpu/cpu0/cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_governor").write_text("schedutil\n")
    (cpu / "scaling_cur_freq").write_text("1804800\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dumpsys = bin_dir / "dumpsys"
    dumpsys.write_text('#!/bin/sh\n[ "$1" = thermalservice ] && echo "Thermal Status: 2"\nexit 0\n')
    dumpsys.chmod(0o755)
    monkeypatch.setenv("HARNESS_SYSFS", str(sysfs))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def check_snapshot(snap: dict) -> None:
    assert snap["battery"] == {"source": "battery", "level": 87, "temp_c": 31.2}
    assert snap["thermal_zones"] == [{"zone": "thermal_zone0", "type": "cpu-big", "temp_c": 45.5}]
    assert snap["governors"] == {"0": {"governor": "schedutil", "cur_freq_khz": 1804800}}
    assert snap["thermal_status"] == {"level": 2, "name": "moderate"}
    assert snap["props"]["ro.product.cpu.abi"]
    json.dumps(snap)


def test_snapshot_of_an_adb_device(fake_board_env, server_env, start_daemon):
    daemon = start_daemon(props={"ro.product.model": "board"})  # its shells inherit the env
    server_env.ok("connect", daemon.serial)
    snap = snapshot(AdbDevice(ServerTransport(daemon.serial)))
    check_snapshot(snap)
    assert snap["props"]["ro.product.model"] == "board" and snap["device"] == daemon.serial


def test_snapshot_of_local(fake_board_env):
    snap = snapshot(LocalDevice())
    check_snapshot(snap)
    assert snap["device"] == "local"


def test_snapshot_of_a_bare_host_has_no_made_up_values(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_SYSFS", str(tmp_path / "empty"))
    snap = snapshot(LocalDevice())
    assert snap["battery"] is None and snap["thermal_zones"] == [] and snap["governors"] == {}


def test_dumpsys_parsers():
    text = "Current Battery Service state:\n  AC powered: false\n  level: 64\n  temperature: 298\n"
    assert parse_dumpsys_battery(text) == {"level": 64, "temp_c": 29.8, "source": "dumpsys"}
    assert parse_thermal_status("IsStatusOverride: false\nThermal Status: 0\n") == {
        "level": 0,
        "name": "none",
    }
    assert parse_thermal_status("Can't find service: thermalservice") is None


@pytest.mark.slow
def test_run_on_an_emulator_serial_through_the_adb_server(
    server_env, start_daemon, variants, digits, store_url
):
    emu = start_daemon(props={"ro.kernel.qemu": "1", "ro.harness.python": sys.executable})
    announce_emulator(server_env.port, emu.port)
    serial = f"emulator-{emu.port - 1}"
    server_env.wait_for_state(serial, "device")
    args = [
        "run",
        str(variants.manifest_path.parent),
        "--variants",
        "fp32,int8",
        "--delegates",
        "cpu",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--eval",
        str(digits / "eval.npz"),
        "--store",
        store_url,
    ]

    remote = harness(*args, "--device", serial, "--json")
    assert remote.returncode == 0, remote.stderr
    local = harness(*args, "--device", "local", "--json")
    assert local.returncode == 0, local.stderr

    r_doc, l_doc = json.loads(remote.stdout), json.loads(local.stdout)
    assert cell_shapes(r_doc) == cell_shapes(l_doc)
    assert {c["device"] for c in r_doc["cells"]} == {serial}
    assert all(c["status"] == "ok" for c in r_doc["cells"])
    table = harness(*args, "--device", serial)
    assert table.returncode == 0, table.stderr
    assert "fp32" in table.stdout and "int8" in table.stdout


@pytest.mark.slow
def test_run_with_avd_starts_and_stops_the_emulator(server_env, fake_sdk, variants, store_url):
    args = [
        "run",
        str(variants.manifest_path.parent),
        "--variants",
        "fp32",
        "--delegates",
        "cpu",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--store",
        store_url,
        "--json",
    ]
    result = harness(*args, "--device", "emulator", "--avd", "test_avd")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (serial,) = {c["device"] for c in doc["cells"]}
    assert serial.startswith("emulator-") and doc["cells"][0]["status"] == "ok"
    assert "booted in" in result.stderr and "stopping the emulator" in result.stderr
    listing = server_env.ok("devices")
    assert f"{serial}\tdevice" not in listing
