"""Pure functions of harness.adbd, plus a bounded fuzz of the packet and sync parsers."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
from pathlib import Path

import pytest
import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.adbd import auth, generate_adb_keypair
from harness.adbd.packets import (
    A_OPEN,
    HEADER,
    HEADER_SIZE,
    ProtocolError,
    checksum,
    decode_packet,
    encode_packet,
)
from harness.adbd.props import PropsError, abi_for_machine, banner, parse_props_text
from harness.adbd.sandbox import Sandbox, SandboxError
from harness.adbd.shell import ShellRequest, exit_status, parse_shell_service
from harness.adbd.stream import StreamClosed
from harness.adbd.sync import SyncSession, adb_file_mode, parse_c_ulong


class ListOutput:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


def run_sync(sandbox: Sandbox, request: bytes) -> bytes:
    """Feed ``request`` bytes to a sync session; EOF acts like the host closing."""
    source = io.BytesIO(request)

    def read_exact(size: int) -> bytes:
        data = source.read(size)
        if len(data) < size:
            raise StreamClosed("end of input")
        return data

    out = ListOutput()
    with contextlib.suppress(StreamClosed):
        SyncSession(read_exact, out, sandbox).run()
    return bytes(out.data)


def req(command: bytes, payload: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<4sI", command, len(payload) if length is None else length) + payload


# --- wire codec -----------------------------------------------------------------------


def test_packet_round_trip_and_checksum() -> None:
    payload = os.urandom(10_000)
    raw = encode_packet(A_OPEN, 5, 0, payload)
    fields = HEADER.unpack(raw[:HEADER_SIZE])
    assert fields[4] == sum(payload) & 0xFFFFFFFF == checksum(payload)
    assert fields[5] == A_OPEN ^ 0xFFFFFFFF
    packet = decode_packet(raw, 1 << 20)
    assert (packet.name, packet.arg0, packet.data) == ("OPEN", 5, payload)


def test_decode_rejects_bad_magic_and_oversize() -> None:
    with pytest.raises(ProtocolError, match="magic"):
        decode_packet(HEADER.pack(A_OPEN, 0, 0, 0, 0, 0), 4096)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_packet(encode_packet(A_OPEN, 0, 0, b"x" * 5000), 4096)


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=200), st.sampled_from([4096, 262144, 1 << 20]))
def test_fuzz_packet_decoder_raises_only_protocol_errors(raw: bytes, limit: int) -> None:
    with contextlib.suppress(ProtocolError):
        decode_packet(raw, limit)


# --- auth and keys --------------------------------------------------------------------


def test_pubkey_struct_round_trip_and_signature(tmp_path: Path) -> None:
    pair = generate_adb_keypair(tmp_path / "adbkey", comment="ci@test")
    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public_key.stat().st_mode) == 0o600
    key = auth.parse_pubkey_line(pair.public_key.read_text())
    assert key.comment == "ci@test" and key.exponent == 65537 and key.size_bytes == 256
    private = rsa.PrivateKey.load_pkcs1(_pkcs1_from_pkcs8(pair.private_key.read_bytes()), "DER")
    assert private.n == key.modulus
    token = auth.new_token()
    signature = rsa.sign_hash(token, private, "SHA-1")
    assert auth.verify_token_signature(key, token, signature)
    assert not auth.verify_token_signature(key, auth.new_token(), signature)
    assert not auth.verify_token_signature(key, token, signature[:-1] + b"\0")
    assert auth.find_signing_key([key], token, signature) is key


def _pkcs1_from_pkcs8(pem: bytes) -> bytes:
    from pyasn1.codec.der import decoder

    info, _ = decoder.decode(rsa.pem.load_pem(pem, "PRIVATE KEY"))
    return info[2].asOctets()


def test_bad_authorized_key_lines_are_skipped(tmp_path: Path) -> None:
    pair = generate_adb_keypair(tmp_path / "k")
    keys_file = tmp_path / "adb_keys"
    keys_file.write_text(
        "# comment\nnot-base64!! x@y\nQUJD short@key\n" + pair.public_key.read_text()
    )
    assert len(auth.load_authorized_keys(keys_file)) == 1
    with pytest.raises(auth.AuthError):
        auth.decode_android_pubkey(b"\0" * 10)


# --- sandbox --------------------------------------------------------------------------


def test_sandbox_maps_and_refuses(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "root")
    sandbox.ensure_layout()
    root = sandbox.root
    assert sandbox.resolve("/data/local/tmp") == f"{root}/data/local/tmp"
    assert sandbox.resolve("data/./local/../local/tmp/") == f"{root}/data/local/tmp"
    assert sandbox.resolve("/") == root
    for bad in ("/..", "/data/../../x", "../etc"):
        with pytest.raises(SandboxError):
            sandbox.resolve(bad)
    os.symlink("/etc", f"{root}/etc_link")
    with pytest.raises(SandboxError):
        sandbox.resolve("/etc_link/passwd")
    assert sandbox.resolve_parent("/etc_link") == f"{root}/etc_link"
    with pytest.raises(SandboxError):
        sandbox.check_link_target("/data/l", "../../../x")
    with pytest.raises(SandboxError):
        sandbox.check_link_target("/data/l", "/etc")
    sandbox.check_link_target("/data/l", "local/tmp")


# --- props, shell, sync helpers -------------------------------------------------------


def test_props_parsing_and_banner() -> None:
    assert parse_props_text('{"a.b": "1", "c": 2}') == {"a.b": "1", "c": "2"}
    assert parse_props_text("# x\n\na.b = hello world\nc=\n") == {"a.b": "hello world", "c": ""}
    for bad in ("no equals sign", "bad key=1", '{"k": "two\\nlines"}', "{broken"):
        with pytest.raises(PropsError):
            parse_props_text(bad)
    assert abi_for_machine("aarch64") == "arm64-v8a"
    assert abi_for_machine("armv7l") == "armeabi-v7a"
    assert abi_for_machine("x86_64") == "x86_64"
    text = banner({"ro.product.model": "a:b;c=d"}, ("shell_v2", "stat_v2")).decode()
    assert text.startswith("device::ro.product.name=;ro.product.model=a_b_c_d;")
    assert text.endswith(";features=shell_v2,stat_v2")


def test_shell_service_grammar() -> None:
    assert parse_shell_service("shell:ls") == ShellRequest("ls")
    assert parse_shell_service("shell:") == ShellRequest("", use_pty=True)
    v2 = parse_shell_service("shell,v2,TERM=xterm,raw:echo a:b")
    assert v2 == ShellRequest("echo a:b", protocol_v2=True, use_pty=False, term="xterm")
    assert parse_shell_service("shell,v2,pty,bogus:top").use_pty
    assert parse_shell_service("exec:cat") == ShellRequest("cat")
    assert parse_shell_service("sync:") is None
    assert parse_shell_service("shellx:ls") is None
    assert (exit_status(7), exit_status(-9), exit_status(256 + 3)) == (7, 0x89, 3)


def test_sync_mode_rules() -> None:
    assert parse_c_ulong("33188") == 0o100644
    assert parse_c_ulong("0100644") == 0o100644
    assert parse_c_ulong("0x81a4") == 0o100644
    assert parse_c_ulong("junk") == 0
    assert adb_file_mode(0o100644) == 0o666
    assert adb_file_mode(0o100770) == 0o777
    assert adb_file_mode(0o100600) == 0o666


def test_sync_session_send_fail_then_quit(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "root")
    sandbox.ensure_layout()
    upload = req(b"DATA", b"hello") + req(b"DONE", length=1_600_000_000)
    reply = run_sync(sandbox, req(b"SEND", b"/data/x/y.txt,33188") + upload + req(b"QUIT"))
    assert reply == req(b"OKAY", length=0)
    written = Path(sandbox.root, "data/x/y.txt")
    assert written.read_bytes() == b"hello" and int(written.stat().st_mtime) == 1_600_000_000
    # Trailing slash: FAIL only after DONE, the data is swallowed, the session ends.
    reply = run_sync(sandbox, req(b"SEND", b"/new/,33188") + upload + req(b"STAT", b"/"))
    assert reply == req(b"FAIL", b"couldn't create file: Is a directory")
    assert not Path(sandbox.root, "new").exists()


def test_sync_session_symlink_push_rules(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "root")
    sandbox.ensure_layout()
    link_mode = str(0o120777).encode()
    for target, ok in ((b"/etc\0", False), (b"../../../..\0", False), (b"tmp\0", True)):
        body = req(b"DATA", target) + req(b"DONE", length=0)
        reply = run_sync(sandbox, req(b"SEND", b"/data/local/link," + link_mode) + body)
        assert reply.startswith(b"OKAY" if ok else b"FAIL"), (target, reply)
    assert os.readlink(Path(sandbox.root, "data/local/link")) == "tmp"


def test_sync_unknown_command_and_long_path(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "root")
    sandbox.ensure_layout()
    assert run_sync(sandbox, req(b"XYZW")).startswith(b"FAIL")
    assert run_sync(sandbox, req(b"STAT", length=5000)) == req(b"FAIL", b"path too long")
    assert run_sync(sandbox, req(b"LIST", b"/missing")) == b"DONE" + bytes(16)
    assert run_sync(sandbox, req(b"LIS2", b"/missing")) == b"DONE" + bytes(72)
    os.mkfifo(Path(sandbox.root, "fifo"))  # must not hang the session in open()
    assert run_sync(sandbox, req(b"RECV", b"/fifo")).startswith(b"FAIL")
    assert run_sync(sandbox, req(b"RECV", b"/")) == req(b"FAIL", b"read failed: Is a directory")
    sta2 = run_sync(sandbox, req(b"STA2", b"/missing"))
    assert len(sta2) == 72 and struct.unpack_from("<I", sta2, 4)[0] == 2  # ENOENT


_COMMANDS = [b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2", b"RECV", b"SEND", b"DATA", b"DONE"]
_PATHS = [b"/", b"/data/local/tmp", b"/..", b"../x", b"/data/local/tmp/f,33188", b"a\0b"]
_request = st.tuples(
    st.sampled_from(_COMMANDS) | st.binary(min_size=4, max_size=4),
    st.sampled_from(_PATHS) | st.binary(max_size=40),
    st.none() | st.integers(0, 2**32 - 1),
)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(_request, max_size=6), st.binary(max_size=64))
def test_fuzz_sync_session_raises_only_protocol_errors(
    tmp_path_factory: pytest.TempPathFactory, requests, tail: bytes
) -> None:
    base = tmp_path_factory.getbasetemp() / "fuzz"
    sandbox = Sandbox(base / "root")
    sandbox.ensure_layout()
    stream = b"".join(req(cmd, path, length) for cmd, path, length in requests) + tail
    with contextlib.suppress(ProtocolError):
        run_sync(sandbox, stream)
    escaped = {p.name for p in base.iterdir()} - {"root"}
    assert not escaped
