"""ServerTransport and open_device against the project's daemon behind a real adb server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from harness.adbd.keys import generate_adb_keypair
from harness.adbd.server import announce_emulator
from harness.devices.adb_server import ServerNotRunning, ServerTransport, list_devices
from harness.devices.registry import open_device
from harness.devices.remote import AdbDevice
from harness.errors import DeviceError, HarnessError


def register(server, daemon, how: str) -> str:
    """Make the adb server list `daemon`: `adb connect`, or an emulator announcement."""
    if how == "connect":
        assert "connected to" in server.ok("connect", daemon.serial)
        serial = daemon.serial
    else:
        announce_emulator(server.port, daemon.port)
        serial = f"emulator-{daemon.port - 1}"
    server.wait_for_state(serial, "device")
    return serial


@pytest.fixture(params=["connect", "emulator"])
def device(request, server_env, start_daemon):
    """(transport, daemon) for a daemon the adb server reached either way."""
    daemon = start_daemon()
    serial = register(server_env, daemon, request.param)
    return ServerTransport(serial), daemon


def test_shell_exit_code_and_stderr_apart(device):
    transport, _ = device
    result = transport.shell("echo out; echo err >&2; exit 7", 10)
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert transport.shell("true", 10).exit_code == 0


def test_push_pull_5mb_byte_identical_and_stat(device, tmp_path):
    transport, daemon = device
    blob = os.urandom(5 * 1024 * 1024 + 17)
    local = tmp_path / "big.bin"
    local.write_bytes(blob)
    transport.push(local, "/data/local/tmp/sub/big.bin", 30)
    on_disk = Path(daemon.sandbox.root) / "data/local/tmp/sub/big.bin"
    assert hashlib.sha256(on_disk.read_bytes()).digest() == hashlib.sha256(blob).digest()
    st = transport.stat("/data/local/tmp/sub/big.bin", 10)
    assert st.exists and st.size == len(blob)
    assert not transport.stat("/data/local/tmp/missing", 10).exists
    assert transport.pull("/data/local/tmp/sub/big.bin", len(blob), 30) == blob
    with pytest.raises(DeviceError, match="over the 1000-byte limit"):
        transport.pull("/data/local/tmp/sub/big.bin", 1000, 30)
    with pytest.raises(DeviceError, match="No such file"):
        transport.pull("/data/local/tmp/missing", 1000, 10)


def test_hostile_file_name_arrives_as_a_name(device, tmp_path):
    transport, daemon = device
    # The device shell's cwd is the sandbox root: a command that ran would leave CANARY*.
    name = 'my model\'s "x"; touch CANARY $(touch CANARY2) `touch CANARY3` $HOME.tflite'
    local = tmp_path / "m.tflite"
    local.write_bytes(b"model bytes")
    remote = f"/data/local/tmp/{name}"
    transport.push(local, remote, 10)
    assert (Path(daemon.sandbox.root) / "data/local/tmp" / name).read_bytes() == b"model bytes"
    assert transport.stat(remote, 10).size == len(b"model bytes")
    dev = AdbDevice(transport)
    listed = dev.shell(["ls", "-1", dev_path(daemon, "/data/local/tmp")])
    assert name in listed.stdout.splitlines()
    assert dev.shell(["echo", name]).stdout == name + "\n"
    assert not list(Path(daemon.sandbox.root).rglob("CANARY*"))
    assert not list(Path.cwd().glob("CANARY*"))


def dev_path(daemon, path: str) -> str:
    """A device path as the (unsandboxed) daemon shell sees it."""
    return str(daemon.sandbox.root) + path


def test_device_without_shell_v2_still_gives_exit_codes(server_env, start_daemon):
    daemon = start_daemon(features=())
    transport = ServerTransport(register(server_env, daemon, "connect"))
    assert transport.features() == frozenset()
    result = transport.shell("echo out; echo err >&2; exit 3", 10)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    (Path(daemon.sandbox.root) / "f").write_bytes(b"12345")
    st = transport.stat("/f", 10)  # STAT, not STA2
    assert st.exists and st.size == 5


def test_unauthorized_device_is_a_clear_error(server_env, start_daemon, tmp_path):
    other = generate_adb_keypair(tmp_path / "other" / "adbkey")  # not the server's key
    daemon = start_daemon(authorized_keys=other.public_key)
    server_env.run("connect", daemon.serial, timeout=30)
    server_env.wait_for_state(daemon.serial, "unauthorized")
    with pytest.raises(DeviceError, match="unauthorized"):
        ServerTransport(daemon.serial).shell("true", 10)
    with pytest.raises(DeviceError, match="is unauthorized"):
        open_device(daemon.serial)


def test_offline_after_the_daemon_stops(server_env, start_daemon):
    daemon = start_daemon()
    transport = ServerTransport(register(server_env, daemon, "connect"))
    assert transport.shell("true", 10).exit_code == 0
    daemon.stop()
    server_env.wait_for_state(daemon.serial, "offline")
    with pytest.raises(DeviceError, match="is offline"):
        transport.shell("true", 10)
    with pytest.raises(DeviceError, match="is offline"):
        open_device(daemon.serial)


def test_unknown_serial(server_env, start_daemon):
    daemon = start_daemon()
    serial = register(server_env, daemon, "connect")
    with pytest.raises(DeviceError, match="device no-such-phone not found"):
        ServerTransport("no-such-phone").shell("true", 10)
    with pytest.raises(HarnessError) as info:
        open_device("no-such-phone")
    message = str(info.value)
    assert "\n" not in message and "local" in message and f"{serial} (device)" in message


def test_server_not_running_is_said_plainly(monkeypatch):
    from adbd.conftest import free_port

    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(free_port()))
    with pytest.raises(ServerNotRunning, match="adb server is not running"):
        list_devices()
    with pytest.raises(DeviceError, match="adb server is not running"):
        open_device("emulator-5554")


def test_open_device_routes_by_name(server_env, start_daemon):
    with pytest.raises(DeviceError, match="no emulator is running"):
        open_device("emulator")
    first = register(server_env, start_daemon(), "emulator")
    dev = open_device("emulator")
    assert isinstance(dev.transport, ServerTransport) and dev.name == first
    assert dev.shell(["echo", "hi"]).stdout == "hi\n"
    register(server_env, start_daemon(), "emulator")
    with pytest.raises(DeviceError, match="more than one emulator"):
        open_device("emulator")
    # HOST:PORT the server does not list: reached directly with adb-shell
    direct = start_daemon()
    dev = open_device(direct.serial)
    assert type(dev.transport).__name__ == "DirectTransport"
    assert dev.shell(["sh", "-c", "exit 4"]).exit_code == 4
