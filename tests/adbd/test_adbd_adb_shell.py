"""The daemon against adb-shell 0.4.4, the pure-Python client the transports use."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from adb_shell.exceptions import AdbCommandFailureException, DeviceAuthError, TcpTimeoutException

from harness.adbd import AdbDaemon, generate_adb_keypair

DaemonFactory = Callable[..., AdbDaemon]


def connect(daemon: AdbDaemon, **kwargs: object) -> AdbDeviceTcp:
    device = AdbDeviceTcp("127.0.0.1", daemon.port, default_transport_timeout_s=10)
    device.connect(**kwargs)
    return device


@pytest.fixture
def device(daemon: AdbDaemon):
    dev = connect(daemon)
    yield dev
    dev.close()


def test_shell_merges_stderr_and_runs_in_sandbox(device, daemon) -> None:
    out = device.shell("echo out; echo err >&2; pwd; echo $HOME; echo $ADBD_ROOT")
    lines = out.splitlines()
    root = daemon.sandbox.root
    assert lines == ["out", "err", root, root, root]


def test_getprop_shim_presents_a_linux_board(device) -> None:
    assert device.shell("getprop ro.harness.device_class").strip() == "linux"
    assert device.shell("getprop sys.boot_completed").strip() == "1"
    assert device.shell("getprop no.such.prop fallback").strip() == "fallback"
    listing = device.shell("getprop")
    assert "[ro.product.cpu.abi]: [" in listing
    abi = device.shell("getprop ro.product.cpu.abi").strip()
    assert abi and " " not in abi


def test_props_override_and_boot_delay(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(props={"ro.product.model": "Pixel 9", "ro.x": "a b"}, boot_delay_s=30)
    dev = connect(daemon)
    try:
        assert dev.shell("getprop ro.product.model").strip() == "Pixel 9"
        assert dev.shell("getprop ro.x").strip() == "a b"
        assert dev.shell("getprop sys.boot_completed") == "\n"  # still "booting"
    finally:
        dev.close()


def test_streaming_shell_yields_payloads(device) -> None:
    chunks = list(device.streaming_shell("echo a; sleep 0.2; echo b"))
    assert "".join(chunks) == "a\nb\n"


def test_exec_out_returns_raw_bytes(device) -> None:
    assert device.exec_out("printf '\\001\\002\\377'", decode=False) == b"\x01\x02\xff"


def test_push_pull_stat_list(device, daemon) -> None:
    payload = os.urandom(300_000)
    device.push(io.BytesIO(payload), "/data/local/tmp/sub/dir/blob.bin", st_mode=0o100644)
    host_file = Path(daemon.sandbox.root, "data/local/tmp/sub/dir/blob.bin")
    assert host_file.read_bytes() == payload
    assert stat.S_IMODE(host_file.stat().st_mode) == 0o666  # adbd copies user bits onward
    pulled = io.BytesIO()
    device.pull("/data/local/tmp/sub/dir/blob.bin", pulled)
    assert pulled.getvalue() == payload
    mode, size, _mtime = device.stat("/data/local/tmp/sub/dir/blob.bin")
    assert stat.S_ISREG(mode) and size == len(payload)
    assert device.stat("/data/local/tmp/missing") == (0, 0, 0)
    names = {bytes(entry.filename) for entry in device.list("/data/local/tmp/sub/dir")}
    assert names == {b".", b"..", b"blob.bin"}


def test_pull_missing_file_fails(device) -> None:
    with pytest.raises(AdbCommandFailureException, match="No such file"):
        device.pull("/data/local/tmp/nope", io.BytesIO())


def test_pull_with_progress_uses_parallel_stream(device) -> None:
    device.push(io.BytesIO(b"z" * 200_000), "/data/local/tmp/p.bin")
    seen: list[int] = []
    out = io.BytesIO()
    device.pull("/data/local/tmp/p.bin", out, progress_callback=lambda _p, n, _t: seen.append(n))
    assert out.getvalue() == b"z" * 200_000 and sum(seen) == 200_000


def test_push_1mb_at_maxdata_4096(start_daemon: DaemonFactory) -> None:
    daemon = start_daemon(maxdata=4096)
    dev = connect(daemon)
    try:
        assert dev._maxdata == 4096
        payload = os.urandom(1_000_000)
        dev.push(io.BytesIO(payload), "/data/local/tmp/one_mb")
        out = io.BytesIO()
        dev.pull("/data/local/tmp/one_mb", out)
        assert out.getvalue() == payload
    finally:
        dev.close()


@pytest.mark.parametrize("maxdata", [262144, 1048576])
def test_large_writes_at_other_maxdata(start_daemon: DaemonFactory, maxdata: int) -> None:
    dev = connect(start_daemon(maxdata=maxdata))
    try:
        payload = os.urandom(3_000_000)
        dev.push(io.BytesIO(payload), "/data/local/tmp/three_mb")
        out = io.BytesIO()
        dev.pull("/data/local/tmp/three_mb", out)
        assert out.getvalue() == payload
        text = dev.shell("head -c 2000000 /dev/zero | tr '\\0' a")
        assert text == "a" * 2_000_000
    finally:
        dev.close()


def test_four_parallel_shells_on_separate_connections(daemon: AdbDaemon) -> None:
    def one(i: int) -> str:
        dev = connect(daemon)
        try:
            return dev.shell(f"sleep 0.3; echo job{i}")
        finally:
            dev.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(4))) == [f"job{i}\n" for i in range(4)]


def test_auth_with_authorized_key(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    pair = generate_adb_keypair(tmp_path / "adbkey")
    daemon = start_daemon(authorized_keys=pair.public_key)
    signer = PythonRSASigner.FromRSAKeyPath(str(pair.private_key))
    dev = connect(daemon, rsa_keys=[signer], auth_timeout_s=5)
    try:
        assert dev.shell("echo authorized") == "authorized\n"
    finally:
        dev.close()


def test_auth_required_without_keys(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    pair = generate_adb_keypair(tmp_path / "adbkey")
    daemon = start_daemon(authorized_keys=pair.public_key)
    with pytest.raises(DeviceAuthError):
        connect(daemon)


def test_unknown_key_is_rejected(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    allowed = generate_adb_keypair(tmp_path / "allowed")
    stranger = generate_adb_keypair(tmp_path / "stranger")
    daemon = start_daemon(authorized_keys=allowed.public_key)
    signer = PythonRSASigner.FromRSAKeyPath(str(stranger.private_key))
    # After the failed signature adb-shell offers its public key, which the daemon never
    # accepts; the client then times out waiting for CNXN (ADB_SPEC.md §1.5).
    with pytest.raises(TcpTimeoutException):
        connect(daemon, rsa_keys=[signer], auth_timeout_s=1)


def test_reconnect_after_close(daemon: AdbDaemon) -> None:
    for i in range(3):
        dev = connect(daemon)
        assert dev.shell(f"echo {i}") == f"{i}\n"
        dev.close()
