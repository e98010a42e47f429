"""The daemon against Debian's real ``adb`` 29.0.6 client and server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.adbd import AdbDaemon, announce_emulator, generate_adb_keypair

DaemonFactory = Callable[..., AdbDaemon]


@pytest.fixture
def connected(adb_server, daemon: AdbDaemon) -> str:
    """Serial of the no-auth daemon after ``adb connect``."""
    out = adb_server.ok("connect", daemon.serial)
    assert f"connected to {daemon.serial}" in out
    return daemon.serial


def test_devices_lists_device_with_model(adb_server, start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(props={"ro.product.model": "Board X:1;2"})
    adb_server.ok("connect", daemon.serial)
    listing = adb_server.ok("devices", "-l")
    line = next(line for line in listing.splitlines() if line.startswith(daemon.serial))
    assert line.split()[1] == "device"
    assert "model:Board_X_1_2" in line  # unsafe banner characters are replaced


def test_shell_exit_code_and_separate_stderr(adb_server, connected: str) -> None:
    result = adb_server.run("-s", connected, "shell", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"


def test_shell_killed_child_reports_signal(adb_server, connected: str) -> None:
    result = adb_server.run("-s", connected, "shell", "kill -9 $$")
    assert result.returncode == 0x80 | 9


def test_shell_stdin_is_piped(adb_server, connected: str) -> None:
    data = os.urandom(2_000_000)
    result = adb_server.run("-s", connected, "shell", "sha256sum", input=data)
    assert result.returncode == 0
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_legacy_shell_and_exec_out(adb_server, connected: str) -> None:
    legacy = adb_server.run("-s", connected, "shell", "-x", "echo legacy; exit 3")
    assert (legacy.returncode, legacy.stdout) == (0, b"legacy\n")  # no exit code without v2
    assert adb_server.ok("-s", connected, "exec-out", "echo exec") == "exec\n"


def test_getprop_boot_completed(adb_server, connected: str) -> None:
    assert adb_server.ok("-s", connected, "shell", "getprop sys.boot_completed") == "1\n"


def test_push_pull_ls(adb_server, connected: str, tmp_path: Path, daemon: AdbDaemon) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(3_000_000))
    adb_server.ok("-s", connected, "push", str(src), "/data/local/tmp/")
    assert Path(daemon.sandbox.root, "data/local/tmp/model.tflite").read_bytes() == (
        src.read_bytes()
    )
    back = tmp_path / "back.tflite"
    adb_server.ok("-s", connected, "pull", "/data/local/tmp/model.tflite", str(back))
    assert back.read_bytes() == src.read_bytes()
    listing = adb_server.ok("-s", connected, "ls", "/data/local/tmp")
    assert listing.splitlines()[-1].split()[-1] == "model.tflite"


def test_push_directory_and_trailing_slash_failure(
    adb_server, connected: str, tmp_path: Path, daemon: AdbDaemon
) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f.txt").write_text("deep")
    adb_server.ok("-s", connected, "push", str(tree), "/data/local/tmp/")
    assert Path(daemon.sandbox.root, "data/local/tmp/tree/a/b/f.txt").read_text() == "deep"
    adb_server.ok("-s", connected, "pull", "/data/local/tmp/tree", str(tmp_path / "copy"))
    assert (tmp_path / "copy/a/b/f.txt").read_text() == "deep"
    result = adb_server.run("-s", connected, "push", str(tree / "a/b/f.txt"), "/new/")
    assert result.returncode != 0
    assert b"Is a directory" in result.stdout + result.stderr


@pytest.mark.slow
def test_push_pull_64_mib_byte_identical(adb_server, connected: str, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(64 * 1024 * 1024))
    adb_server.ok("-s", connected, "push", str(src), "/data/local/tmp/big.bin")
    back = tmp_path / "big.back"
    adb_server.ok("-s", connected, "pull", "/data/local/tmp/big.bin", str(back))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest


def test_emulator_registration(adb_server, daemon: AdbDaemon) -> None:
    announce_emulator(adb_server.port, daemon.port)
    serial = f"emulator-{daemon.port - 1}"
    adb_server.wait_for_state(serial, "device")
    assert adb_server.ok("-s", serial, "shell", "echo emu") == "emu\n"
    assert adb_server.ok("-e", "shell", "echo via -e") == "via -e\n"


def test_auth_accepts_the_servers_key(adb_server, start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(authorized_keys=adb_server.public_key)
    assert "connected to" in adb_server.ok("connect", daemon.serial)
    adb_server.wait_for_state(daemon.serial, "device")
    assert adb_server.ok("-s", daemon.serial, "shell", "echo signed") == "signed\n"


def test_auth_rejects_unknown_key(adb_server, start_daemon: DaemonFactory, tmp_path: Path) -> None:
    other = generate_adb_keypair(tmp_path / "other")
    daemon = start_daemon(authorized_keys=other.public_key)
    result = adb_server.run("connect", daemon.serial)
    assert b"failed to authenticate" in result.stdout + result.stderr
    adb_server.wait_for_state(daemon.serial, "unauthorized")
    denied = adb_server.run("-s", daemon.serial, "shell", "echo never")
    assert denied.returncode != 0 and b"never" not in denied.stdout
