"""Streamed shells: the runner's lines arrive while it runs, over both transports.

The commands below print a line, then wait (bounded) for a file that the test creates
only after it has read that line: a transport that buffered until the end would make
them print "late" instead of "released".
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from harness.devices.adb_direct import DirectTransport, sentinel_stream
from harness.devices.adb_server import ServerTransport
from harness.devices.remote import AdbDevice
from harness.errors import DeviceError

from .test_adb_server import register

NONCE = "0123456789abcdef"


def _sentinel_output(stdout: bytes, code: int, stderr: bytes) -> bytes:
    return stdout + f"\n{NONCE}:{code}\n".encode() + stderr


def _drain(gen):
    out = b""
    while True:
        try:
            out += next(gen)
        except StopIteration as done:
            return out, done.value


@pytest.mark.parametrize("size", [1, 2, 5, 17, 1000])
def test_sentinel_stream_any_chunking(size):
    stdout = b'{"type": "cell"}\nhalf a line with 0123456789abcde in it\n\n'
    raw = _sentinel_output(stdout, 3, b"warn\n")
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    out, result = _drain(sentinel_stream(chunks, NONCE, "dev"))
    assert out == stdout + b"\n"  # the sentinel's own newline ends it
    assert (result.exit_code, result.stdout, result.stderr) == (3, "", "warn\n")


def test_sentinel_stream_cut_short_is_a_device_error():
    raw = _sentinel_output(b"line\n", 0, b"")
    gen = sentinel_stream([raw[:8]], NONCE, "dev")
    with pytest.raises(DeviceError, match="closed the shell before the command finished"):
        _drain(gen)


def test_sentinel_stream_yields_each_chunk_before_reading_the_next():
    """A short line comes out whole at once; only a tail that may begin the nonce waits."""
    chunks = itertools.chain([b"a\n", b"b\n0123"], iter(lambda: pytest.fail("read ahead"), 1))
    gen = sentinel_stream(chunks, NONCE, "dev")
    assert next(gen) == b"a\n"
    assert next(gen) == b"b\n"  # "0123" may be the nonce's start: held back


def test_the_nonce_inside_a_line_is_not_the_sentinel():
    raw = f"x{NONCE}:9\n".encode() + _sentinel_output(b"", 0, b"")
    out, result = _drain(sentinel_stream([raw], NONCE, "dev"))
    assert out == f"x{NONCE}:9\n\n".encode() and result.exit_code == 0


def _handshake_command(flag: Path) -> str:
    wait = f"i=0; while [ ! -e {flag} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done"
    return (
        f"echo started; {wait}; "
        f"if [ -e {flag} ]; then echo released; else echo late; fi; echo err >&2; exit 4"
    )


def _stream_and_release(device: AdbDevice, flag: Path, while_running=None) -> list[str]:
    lines = []
    for line in device.stream(["sh", "-c", _handshake_command(flag)], timeout=60):
        if line == "\n":  # the sentinel's newline, on the legacy paths
            continue
        lines.append(line)
        if line == "started\n":
            if while_running:
                while_running()
            flag.touch()
    return lines


@pytest.fixture
def direct(start_daemon, host_key):
    daemon = start_daemon()
    transport = DirectTransport("127.0.0.1", daemon.port)
    yield AdbDevice(transport, workdir="/data/local/tmp/harness"), daemon
    transport.close()


def test_direct_lines_arrive_while_the_command_runs(direct, tmp_path):
    device, daemon = direct
    pulled = []
    (Path(daemon.sandbox.root) / "data/local/tmp").mkdir(parents=True, exist_ok=True)
    (Path(daemon.sandbox.root) / "data/local/tmp/outputs.bin").write_bytes(b"cell outputs")
    # a pull on the main connection while the runner's own connection is streaming
    lines = _stream_and_release(
        device,
        tmp_path / "flag",
        lambda: pulled.append(device.pull_bytes("/data/local/tmp/outputs.bin", 100)),
    )
    assert lines == ["started\n", "released\n"]
    assert device.returncode == 4
    assert pulled == [b"cell outputs"]


@pytest.mark.parametrize("features", [None, ()], ids=["shell_v2", "legacy"])
def test_adb_server_lines_arrive_while_the_command_runs(
    server_env, start_daemon, tmp_path, features
):
    daemon = start_daemon() if features is None else start_daemon(features=features)
    device = AdbDevice(ServerTransport(register(server_env, daemon, "connect")))
    assert _stream_and_release(device, tmp_path / "flag") == ["started\n", "released\n"]
    assert device.returncode == 4


def test_a_silent_command_is_a_stalled_link_after_the_idle_timeout(direct, server_env, monkeypatch):
    monkeypatch.setenv("HARNESS_STREAM_IDLE_TIMEOUT", "1")
    device, daemon = direct
    over_server = AdbDevice(ServerTransport(register(server_env, daemon, "connect")))
    for dev in (device, over_server):
        with pytest.raises(DeviceError, match="(?i)time"):
            list(dev.stream(["sleep", "5"], timeout=60))
