"""Fuzzing the parsers that read bytes from strangers (hypothesis, bounded, derandomized).

Each property: arbitrary input gives a result or the parser's own error type — never
another exception, never a payload past its bound, never a path outside the sandbox.
Crashes found and fixed are listed in docs/FUZZING.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.adbd.auth import AuthError, parse_pubkey_line
from harness.adbd.faults import FaultSpecError, parse_fault
from harness.adbd.packets import (
    A_CNXN,
    A_OPEN,
    A_WRTE,
    HEADER,
    ConnectionClosed,
    PacketReader,
    ProtocolError,
    decode_packet,
)
from harness.adbd.sandbox import Sandbox, SandboxError
from harness.adbd.shell import parse_shell_service
from harness.adbd.sync import REQUEST, SyncSession
from harness.runners.python_runner import _parse_line

pytestmark = pytest.mark.bad_input("fuzzed parsers")
FUZZ = settings(
    max_examples=int(os.environ.get("HARNESS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
COMMANDS = [A_CNXN, A_OPEN, A_WRTE, 0x12345678]


def _header(command, arg0, arg1, length, magic_ok=True):
    magic = command ^ 0xFFFFFFFF if magic_ok else command
    return HEADER.pack(command, arg0, arg1, length, 0, magic)


packet_like = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda c, a0, a1, n, ok, tail: _header(c, a0, a1, n, ok) + tail,
        st.sampled_from(COMMANDS),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1) | st.integers(0, 64),
        st.booleans(),
        st.binary(max_size=80),
    ),
)


@FUZZ
@given(packet_like)
def test_decode_packet(raw):
    try:
        packet = decode_packet(raw, 4096)
    except ProtocolError:
        return
    assert len(packet.data) <= 4096


class _FakeSocket:
    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk = data, max(1, chunk)

    def recv(self, n):
        out, self.data = self.data[: min(n, self.chunk)], self.data[min(n, self.chunk) :]
        return out

    def setsockopt(self, *args):
        pass


@FUZZ
@given(st.lists(packet_like, max_size=6).map(b"".join), st.integers(1, 64))
def test_packet_reader_stream(stream, chunk):
    reader = PacketReader(_FakeSocket(stream, chunk))
    read = 0
    while True:
        try:
            packet = reader.read_packet(256)
        except ConnectionClosed:
            break
        except ProtocolError:
            break
        assert len(packet.data) <= 256
        read += 24 + len(packet.data)
        assert read <= len(stream)


def _sync_request(kind: bytes, body: bytes) -> bytes:
    return REQUEST.pack(kind, len(body)) + body


sync_request = st.one_of(
    st.binary(max_size=64),
    st.builds(
        _sync_request,
        st.sampled_from([b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2", b"RECV", b"SEND", b"QUIT"]),
        st.one_of(
            st.sampled_from(
                [b"/data/local/tmp/x", b"../../etc/passwd", b"/../..", b"a/../../b", b"x,33188"]
            ),
            st.binary(max_size=40),
        ),
    ),
    st.builds(
        lambda n, data: REQUEST.pack(b"DATA", n) + data,
        st.integers(0, 2**32 - 1) | st.integers(0, 30),
        st.binary(max_size=30),
    ),
    st.builds(lambda t: REQUEST.pack(b"DONE", t), st.integers(0, 2**32 - 1)),
)


@pytest.fixture(scope="module")
def fuzz_root():
    with tempfile.TemporaryDirectory() as top:
        root = os.path.join(top, "root")
        os.makedirs(os.path.join(root, "data/local/tmp"))
        os.symlink(top, os.path.join(root, "data/local/tmp/out"))
        yield top, root


@FUZZ
@given(st.lists(sync_request, max_size=8).map(b"".join))
def test_sync_session(fuzz_root, stream):
    top, root = fuzz_root
    buf = [stream]

    def read_exact(n):
        if len(buf[0]) < n:
            raise ConnectionClosed("end of fuzz input")
        out, buf[0] = buf[0][:n], buf[0][n:]
        return out

    class Out:
        size = 0

        def write(self, data):
            self.size += len(data)

        def flush(self):
            pass

    with contextlib.suppress(ProtocolError):
        SyncSession(read_exact, Out(), Sandbox(root)).run()
    assert sorted(os.listdir(top)) == ["root"]  # nothing was written beside the root


@FUZZ
@given(st.binary(max_size=120))
def test_sandbox_paths(path):
    sandbox = Sandbox("/srv/fuzz-root")
    try:
        host = sandbox.host_path_lexical(path)
    except SandboxError:
        return
    assert host == sandbox.root or host.startswith(sandbox.root + "/")


@FUZZ
@given(st.text(max_size=80))
def test_shell_service_names(name):
    request = parse_shell_service(name)
    assert request is None or isinstance(request.command, str)


@FUZZ
@given(st.one_of(st.binary(max_size=800), st.text(max_size=200)))
def test_public_key_lines(line):
    with contextlib.suppress(AuthError):
        parse_pubkey_line(line)


@FUZZ
@given(st.text(max_size=80))
def test_fault_specs(spec):
    with contextlib.suppress(FaultSpecError):
        parse_fault(spec)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.builds(lambda s: "{" + s, st.text(max_size=300))))
def test_runner_result_lines(line):
    doc = _parse_line(line)
    assert doc is None or (isinstance(doc, dict) and doc.get("schema") == 1)


@FUZZ
@given(st.text(max_size=2000))
def test_benchmark_model_output(text):
    from harness.runners.benchmark_model.parse import parse_output

    parse_output(text)  # whatever the tool printed, a result, never an exception


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(packet_like, min_size=1, max_size=4).map(b"".join))
def test_live_daemon_survives_garbage(stream):
    from harness.adbd import AdbDaemon, DaemonConfig

    global _DAEMON
    if _DAEMON is None:
        _DAEMON = AdbDaemon(DaemonConfig(root=tempfile.mkdtemp(prefix="fuzz-adbd-")))
        _DAEMON.start()
    with socket.create_connection(("127.0.0.1", _DAEMON.port), timeout=5) as sock:
        sock.sendall(stream)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    # the daemon still greets the next host
    with socket.create_connection(("127.0.0.1", _DAEMON.port), timeout=5) as sock:
        sock.sendall(_header(A_CNXN, 0x01000000, 4096, 7) + b"host::\0")
        reader = PacketReader(sock)
        assert reader.read_packet(4096).command == A_CNXN


_DAEMON = None


def teardown_module():
    if _DAEMON is not None:
        _DAEMON.stop()


def test_struct_sizes_are_what_the_fuzzers_assume():
    assert HEADER.size == 24 and REQUEST.size == struct.calcsize("<4sI")
