"""Hostile input: sandbox escapes, unsafe configs, oversized packets, stalled clients."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.exceptions import AdbCommandFailureException, PushFailedError

from harness.adbd import AdbDaemon, DaemonConfig, DaemonConfigError, generate_adb_keypair
from harness.adbd.packets import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_VERSION_MIN,
    A_WRTE,
    AUTH_RSAPUBLICKEY,
    AUTH_TOKEN,
    HEADER,
)

DaemonFactory = Callable[..., AdbDaemon]
HOSTILE_NAME = "a b'c\";$(touch PWNED)`id`;x.bin"


def adb_shell(daemon: AdbDaemon) -> AdbDeviceTcp:
    device = AdbDeviceTcp("127.0.0.1", daemon.port, default_transport_timeout_s=10)
    device.connect()
    return device


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the sandbox root that must stay untouched."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("host secret")
    return path


def test_sync_refuses_dotdot_escape(daemon: AdbDaemon, outside: Path) -> None:
    dev = adb_shell(daemon)
    try:
        with pytest.raises(AdbCommandFailureException, match="Permission denied"):
            dev.pull("/../outside/secret.txt", io.BytesIO())
        with pytest.raises(AdbCommandFailureException):
            dev.pull("data/../../outside/secret.txt", io.BytesIO())
        with pytest.raises(PushFailedError):
            dev.push(io.BytesIO(b"evil"), "/../outside/evil.txt")
        assert dev.stat("/../outside/secret.txt") == (0, 0, 0)
        assert dev.list("/..") == []
    finally:
        dev.close()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_absolute_paths_stay_inside_root(daemon: AdbDaemon, outside: Path) -> None:
    dev = adb_shell(daemon)
    try:
        with pytest.raises(AdbCommandFailureException, match="No such file"):
            dev.pull(str(outside / "secret.txt"), io.BytesIO())  # means ROOT/tmp/.../secret
        with pytest.raises(AdbCommandFailureException):
            dev.pull("/etc/passwd", io.BytesIO())
        dev.push(io.BytesIO(b"inside"), str(outside / "new.txt"))
    finally:
        dev.close()
    assert not (outside / "new.txt").exists()
    assert Path(daemon.sandbox.root + str(outside / "new.txt")).read_bytes() == b"inside"


def test_symlinks_pointing_out_are_refused(daemon: AdbDaemon, outside: Path) -> None:
    tmp = Path(daemon.sandbox.root, "data/local/tmp")
    (tmp / "dir_link").symlink_to(outside)
    (tmp / "file_link").symlink_to(outside / "secret.txt")
    dev = adb_shell(daemon)
    try:
        for path in ("/data/local/tmp/file_link", "/data/local/tmp/dir_link/secret.txt"):
            with pytest.raises(AdbCommandFailureException, match="Permission denied"):
                dev.pull(path, io.BytesIO())
        with pytest.raises(PushFailedError):
            dev.push(io.BytesIO(b"evil"), "/data/local/tmp/dir_link/evil.txt")
        assert dev.list("/data/local/tmp/dir_link") == []
        # lstat of the link itself is fine: it reveals the link, not the target's data.
        assert dev.stat("/data/local/tmp/file_link")[0] & 0o170000 == 0o120000
        # Pushing onto the link replaces the link, never writes through it.
        dev.push(io.BytesIO(b"replaced"), "/data/local/tmp/file_link")
    finally:
        dev.close()
    assert (outside / "secret.txt").read_text() == "host secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (tmp / "file_link").read_bytes() == b"replaced"


def test_hostile_file_name_with_adb_shell(daemon: AdbDaemon) -> None:
    dev = adb_shell(daemon)
    path = f"/data/local/tmp/{HOSTILE_NAME}"
    try:
        dev.push(io.BytesIO(b"payload"), path)
        out = io.BytesIO()
        dev.pull(path, out)
        names = {bytes(e.filename).decode() for e in dev.list("/data/local/tmp")}
    finally:
        dev.close()
    assert out.getvalue() == b"payload"
    assert HOSTILE_NAME in names
    assert not list(Path(daemon.sandbox.root).rglob("PWNED"))


def test_hostile_file_name_with_real_adb(adb_server, daemon: AdbDaemon, tmp_path: Path) -> None:
    src = tmp_path / HOSTILE_NAME
    src.write_bytes(b"hostile")
    adb_server.ok("connect", daemon.serial)
    adb_server.ok("-s", daemon.serial, "push", str(src), "/data/local/tmp/")
    back = tmp_path / "back.bin"
    adb_server.ok("-s", daemon.serial, "pull", f"/data/local/tmp/{HOSTILE_NAME}", str(back))
    assert back.read_bytes() == b"hostile"
    assert HOSTILE_NAME in adb_server.ok("-s", daemon.serial, "ls", "/data/local/tmp")
    assert not list(tmp_path.rglob("PWNED"))


def test_no_auth_refused_on_public_address() -> None:
    with pytest.raises(DaemonConfigError, match="loopback"):
        AdbDaemon(DaemonConfig(host="0.0.0.0", authorized_keys=None))


def run_cli(*args: str, **kwargs) -> subprocess.Popen:
    code = "import sys; sys.argv[0] = 'harness'; from harness.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_cli_refuses_no_auth_on_public_address() -> None:
    proc = run_cli("serve-device", "--no-auth", "--host", "0.0.0.0", "--port", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.decode().count("\n") == 1 and "loopback" in err.decode()


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    proc = run_cli("serve-device", "--no-auth", "--port", "0", "--root", str(tmp_path))
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("serving ADB device on 127.0.0.1:"), line
        port = int(line.split()[4].rsplit(":", 1)[1])
        dev = AdbDeviceTcp("127.0.0.1", port, default_transport_timeout_s=10)
        dev.connect()
        assert dev.shell("echo cli") == "cli\n"
        dev.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_oversized_header_closes_only_that_connection(
    start_daemon: DaemonFactory, raw_client
) -> None:
    daemon = start_daemon(maxdata=4096)
    good = adb_shell(daemon)
    try:
        bad = raw_client(daemon.port)
        bad.sock.sendall(HEADER.pack(A_WRTE, 1, 1, 4097, 0, A_WRTE ^ 0xFFFFFFFF))
        assert bad.is_closed_by_peer()
        early = raw_client(daemon.port, handshake=False)  # before CNXN the bound is 4096 too
        early.sock.sendall(HEADER.pack(A_CNXN, 1, 1, 64 << 20, 0, A_CNXN ^ 0xFFFFFFFF))
        assert early.is_closed_by_peer()
        magic = raw_client(daemon.port)
        magic.sock.sendall(HEADER.pack(A_OPEN, 1, 0, 0, 0, 12345))
        assert magic.is_closed_by_peer()
        assert good.shell("echo still fine") == "still fine\n"
    finally:
        good.close()


def test_stalled_stream_does_not_block_others(daemon: AdbDaemon, raw_client) -> None:
    slow = raw_client(daemon.port)
    try:
        slow.send(A_OPEN, 7, 0, b"shell:head -c 50000000 /dev/zero\0")
        assert slow.read().command == A_OKAY
        assert slow.read().command == A_WRTE  # ...and we never acknowledge it
        # Another stream on the same connection still works.
        slow.send(A_OPEN, 9, 0, b"shell:echo same-connection\0")
        okay = slow.read()
        assert (okay.command, okay.arg1) == (A_OKAY, 9)
        data = slow.read()
        assert (data.command, data.data) == (A_WRTE, b"same-connection\n")
        slow.send(A_OKAY, 9, data.arg0)
        assert slow.read().command == A_CLSE
        # And another connection too.
        other = adb_shell(daemon)
        assert other.shell("echo other") == "other\n"
        other.close()
    finally:
        slow.close()


def test_unknown_service_and_stream_limit(start_daemon: DaemonFactory, raw_client) -> None:
    daemon = start_daemon(max_streams=2)
    client = raw_client(daemon.port)
    try:
        client.send(A_OPEN, 3, 0, b"reboot:\0")
        assert client.read().command == A_CLSE
        for host_id in (4, 5):
            client.send(A_OPEN, host_id, 0, b"shell:sleep 30\0")
            assert client.read().command == A_OKAY
        client.send(A_OPEN, 6, 0, b"shell:echo too many\0")
        refused = client.read()
        assert (refused.command, refused.arg0, refused.arg1) == (A_CLSE, 0, 6)
    finally:
        client.close()


def test_unknown_key_never_gets_a_shell(
    start_daemon: DaemonFactory, tmp_path: Path, raw_client
) -> None:
    allowed = generate_adb_keypair(tmp_path / "allowed")
    stranger = generate_adb_keypair(tmp_path / "stranger")
    daemon = start_daemon(authorized_keys=allowed.public_key)
    client = raw_client(daemon.port, handshake=False)
    try:
        client.send(A_CNXN, A_VERSION_MIN, 1 << 20, b"host::\0")
        token = client.read()
        assert (token.command, token.arg0) == (A_AUTH, AUTH_TOKEN)
        client.send(A_AUTH, AUTH_RSAPUBLICKEY, 0, stranger.public_key.read_bytes() + b"\0")
        client.send(A_OPEN, 1, 0, b"shell:touch PWNED\0")
        client.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            client.read()
    finally:
        client.close()
    assert not list(Path(daemon.sandbox.root).rglob("PWNED"))
