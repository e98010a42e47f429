"""Devices behind a running adb server, reached with the documented adb host protocol.

This is how device labs share phones and emulators with other tools: the adb server
owns the USB/TCP links and we ask it for one device (`host:transport:<serial>`), then
open a service on it. Requests are `%04x` + text; replies start with OKAY or
FAIL + `%04x` + message (AOSP adb/OVERVIEW.TXT, SERVICES.TXT, SYNC.TXT).

Shell uses the shell protocol (`shell,v2,raw:`) when the device has `shell_v2`, so
the exit code is real and stderr apart; otherwise `shell:` with the same nonce
sentinel as the direct transport. Files go over `sync:`. Every socket operation has a
timeout and every read from the server or device is bounded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from harness.devices.adb_direct import parse_sentinel, sentinel_stream, wrap_with_sentinel
from harness.devices.base import RemoteStat, ShellResult
from harness.errors import DeviceError

DEFAULT_PORT = 5037
CONNECT_TIMEOUT = 5.0
MAX_SHELL_OUTPUT = 64 << 20  # stdout + stderr of one command
SYNC_CHUNK = 64 * 1024
MAX_SYNC_PATH = 1024
MAX_FAIL_MESSAGE = 4096

# shell protocol packet ids (ADB_SPEC.md §2)
_STDOUT, _STDERR, _EXIT, _CLOSE_STDIN = 1, 2, 3, 4


class ServerNotRunning(DeviceError):
    """No adb server listens on the port."""


def adb_server_port() -> int:
    """$ANDROID_ADB_SERVER_PORT, else 5037."""
    value = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
    try:
        return int(value) if value else DEFAULT_PORT
    except ValueError as exc:
        raise DeviceError(f"ANDROID_ADB_SERVER_PORT is not a port number: {value!r}") from exc


class _Conn:
    """One TCP connection to the adb server, with a deadline for every operation."""

    def __init__(self, port: int, deadline: float, idle: float | None = None):
        self.port = port
        self.deadline = deadline
        self.idle = idle  # the longest silence allowed, within the deadline
        try:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
        except ConnectionRefusedError as exc:
            raise ServerNotRunning(
                f"the adb server is not running (nothing on 127.0.0.1:{port}; "
                "start it with `adb start-server`)"
            ) from exc
        except OSError as exc:
            raise DeviceError(f"cannot reach the adb server on port {port}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _timeout(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeviceError("timed out")
        self.sock.settimeout(min(left, self.idle) if self.idle else left)

    def send(self, data: bytes) -> None:
        try:
            self._timeout()
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise DeviceError("timed out sending to the adb server") from exc
        except OSError as exc:
            raise DeviceError(f"connection to the adb server lost: {exc}") from exc

    def read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.read_some(n - len(buf))
            if not chunk:
                raise DeviceError("the connection closed in the middle of a reply")
            buf += chunk
        return bytes(buf)

    def read_some(self, n: int) -> bytes:
        """Up to n bytes; b'' at end of stream."""
        try:
            self._timeout()
            return self.sock.recv(min(n, 1 << 20))
        except TimeoutError as exc:
            raise DeviceError("timed out waiting for the device") from exc
        except OSError as exc:
            raise DeviceError(f"connection lost: {exc}") from exc

    def request(self, text: str) -> None:
        """Send one host request and require OKAY; FAIL becomes a DeviceError."""
        data = text.encode()
        if len(data) > 0xFFFF:
            raise DeviceError("adb request too long")
        self.send(b"%04x" % len(data) + data)
        status = self.read_exact(4)
        if status == b"OKAY":
            return
        if status == b"FAIL":
            raise _ServerFail(self.read_hex_string())
        raise DeviceError(f"unexpected reply from the adb server: {status!r}")

    def read_hex_string(self) -> str:
        length = int(self.read_exact(4), 16)  # at most 0xffff: bounded
        return self.read_exact(length).decode("utf-8", "replace")


class _ServerFail(DeviceError):
    """The server answered FAIL; the message is the server's own."""


def host_query(request: str, port: int | None = None, timeout: float = 10.0) -> str:
    """A host request whose reply is a length-prefixed string (devices-l, features…)."""
    with _Conn(port or adb_server_port(), time.monotonic() + timeout) as conn:
        conn.request(request)
        return conn.read_hex_string()


@dataclass(frozen=True)
class ServerDevice:
    """One line of `host:devices-l`."""

    serial: str
    state: str  # device | offline | unauthorized | authorizing | connecting | …
    info: dict[str, str]

    @property
    def is_emulator(self) -> bool:
        return self.serial.startswith("emulator-")


def list_devices(port: int | None = None, timeout: float = 10.0) -> list[ServerDevice]:
    """Every device the adb server knows, with its state; ServerNotRunning if none runs."""
    devices = []
    for line in host_query("host:devices-l", port, timeout).splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        info = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
        devices.append(ServerDevice(parts[0], parts[1], info))
    return devices


def explain_state(serial: str, state: str) -> str:
    """Why a device that is not in state "device" cannot be used, in plain words."""
    if state == "unauthorized":
        return (
            f"{serial} is unauthorized: the device has not accepted this adb server's key "
            "(allow USB debugging on the device, or add ~/.android/adbkey.pub to its keys)"
        )
    if state == "offline":
        return f"{serial} is offline: the adb server lost it (reconnect it, or `adb disconnect`)"
    if state in ("authorizing", "connecting"):
        return f"{serial} is still {state}; try again in a moment"
    return f"{serial} is in state {state!r}, not ready"


class ServerTransport:
    """Transport to one device through the adb server (serial as `adb devices` shows it)."""

    def __init__(self, serial: str, server_port: int | None = None):
        self.serial = serial
        self.port = server_port or adb_server_port()
        self._features: frozenset[str] | None = None

    # -- plumbing ----------------------------------------------------------------

    def _open(self, service: str, timeout: float, idle: float | None = None) -> _Conn:
        """A connection switched to this device with `service` opened on it."""
        conn = _Conn(self.port, time.monotonic() + timeout, idle)
        try:
            try:
                conn.request(f"host:transport:{self.serial}")
            except _ServerFail as exc:
                raise DeviceError(self._explain(str(exc))) from None
            try:
                conn.request(service)
            except _ServerFail as exc:
                raise DeviceError(f"{self.serial}: {service.split(':')[0]}: {exc}") from None
        except BaseException:
            conn.sock.close()
            raise
        return conn

    def _explain(self, message: str) -> str:
        low = message.lower()
        if "not found" in low:
            return f"device {self.serial} not found (the adb server does not list it)"
        for state in ("unauthorized", "offline", "authorizing", "connecting"):
            if state in low:
                return explain_state(self.serial, state)
        if "more than one" in low:
            return f"{self.serial}: {message}"
        return f"{self.serial}: the adb server refused it: {message.strip()}"

    def features(self) -> frozenset[str]:
        """The device's features, as the adb server recorded them from its banner."""
        if self._features is None:
            try:
                text = host_query(f"host-serial:{self.serial}:features", self.port)
            except _ServerFail as exc:
                raise DeviceError(self._explain(str(exc))) from None
            self._features = frozenset(f for f in text.strip().split(",") if f)
        return self._features

    def close(self) -> None:
        """Nothing is held between operations: each opens its own server connection."""

    # -- shell ------------------------------------------------------------------------

    def shell(self, command: str, timeout: float) -> ShellResult:
        if "shell_v2" not in self.features():
            return self._shell_legacy(command, timeout)
        out = bytearray()
        stream = self._stream_v2(command, timeout, None)
        while True:
            try:
                out += next(stream)
            except StopIteration as done:
                return ShellResult(done.value.exit_code, _decode(out), done.value.stderr)
            if len(out) > MAX_SHELL_OUTPUT:
                raise DeviceError(
                    f"{self.serial}: command output over {MAX_SHELL_OUTPUT >> 20} MiB"
                )

    def shell_stream(
        self, command: str, timeout: float, idle: float
    ) -> Generator[bytes, None, ShellResult]:
        """Stdout packets as they arrive (each on its own server connection, as always)."""
        if "shell_v2" not in self.features():
            nonce = secrets.token_hex(8)
            with self._open(f"shell:{wrap_with_sentinel(command, nonce)}", timeout, idle) as conn:
                chunks = iter(lambda: conn.read_some(1 << 16), b"")
                return (yield from sentinel_stream(chunks, nonce, self.serial))
        return (yield from self._stream_v2(command, timeout, idle))

    def _stream_v2(
        self, command: str, timeout: float, idle: float | None
    ) -> Generator[bytes, None, ShellResult]:
        """The shell protocol: stdout packets yielded, stderr kept, the real exit code."""
        with self._open(f"shell,v2,raw:{command}", timeout, idle) as conn:
            conn.send(struct.pack("<BI", _CLOSE_STDIN, 0))  # no stdin: EOF at once
            err = bytearray()
            while True:
                head = _read_or_eof(conn, 5)
                if head is None:
                    raise DeviceError(
                        f"{self.serial}: the shell ended without an exit status (connection lost?)"
                    )
                kind, length = struct.unpack("<BI", head)
                if len(err) + length > MAX_SHELL_OUTPUT:
                    raise DeviceError(
                        f"{self.serial}: command output over {MAX_SHELL_OUTPUT >> 20} MiB"
                    )
                payload = conn.read_exact(length)
                if kind == _STDOUT:
                    yield payload
                elif kind == _STDERR:
                    err += payload
                elif kind == _EXIT:
                    return ShellResult(payload[0] if payload else 255, "", _decode(err))

    def _shell_legacy(self, command: str, timeout: float) -> ShellResult:
        nonce = secrets.token_hex(8)
        wrapped = wrap_with_sentinel(command, nonce)
        with self._open(f"shell:{wrapped}", timeout) as conn:
            raw = bytearray()
            while chunk := conn.read_some(1 << 16):
                raw += chunk
                if len(raw) > MAX_SHELL_OUTPUT:
                    raise DeviceError(
                        f"{self.serial}: command output over {MAX_SHELL_OUTPUT >> 20} MiB"
                    )
        try:
            return parse_sentinel(bytes(raw), nonce)
        except DeviceError as exc:
            raise DeviceError(f"{self.serial}: {exc}") from None

    # -- sync ---------------------------------------------------------------------------

    def push(self, local: Path, remote: str, timeout: float) -> None:
        """SEND remote,0644 + DATA… + DONE mtime; the device answers OKAY or FAIL."""
        local = Path(local)
        header = f"{remote},{0o100644}".encode()
        _check_path(header, remote)
        with self._open("sync:", timeout) as conn, open(local, "rb") as f:
            conn.send(b"SEND" + struct.pack("<I", len(header)) + header)
            while chunk := f.read(SYNC_CHUNK):
                conn.send(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
            conn.send(b"DONE" + struct.pack("<I", int(local.stat().st_mtime)))
            status, length = struct.unpack("<4sI", conn.read_exact(8))
            if status == b"FAIL":
                raise DeviceError(
                    f"{self.serial}: push to {remote} failed: {_fail_text(conn, length)}"
                )
            if status != b"OKAY":
                raise DeviceError(f"{self.serial}: push: unexpected sync reply {status!r}")
            _quit(conn)

    def pull(self, remote: str, limit: int, timeout: float) -> bytes:
        """RECV remote → DATA… DONE, refusing more than `limit` bytes."""
        path = remote.encode()
        _check_path(path, remote)
        with self._open("sync:", timeout) as conn:
            conn.send(b"RECV" + struct.pack("<I", len(path)) + path)
            data = bytearray()
            while True:
                status, length = struct.unpack("<4sI", conn.read_exact(8))
                if status == b"DONE":
                    break
                if status == b"FAIL":
                    raise DeviceError(f"{self.serial}: pull {remote}: {_fail_text(conn, length)}")
                if status != b"DATA" or length > SYNC_CHUNK:
                    raise DeviceError(f"{self.serial}: pull: malformed sync reply {status!r}")
                if len(data) + length > limit:
                    raise DeviceError(f"{self.serial}: {remote}: over the {limit}-byte limit")
                data += conn.read_exact(length)
            _quit(conn)
        return bytes(data)

    def stat(self, remote: str, timeout: float) -> RemoteStat:
        """STA2 (follows links, 64-bit size) when the device has stat_v2, else STAT."""
        path = remote.encode()
        _check_path(path, remote)
        v2 = "stat_v2" in self.features()
        with self._open("sync:", timeout) as conn:
            conn.send((b"STA2" if v2 else b"STAT") + struct.pack("<I", len(path)) + path)
            if v2:
                reply = conn.read_exact(72)
                _, error, _dev, _ino, mode, _nl, _uid, _gid, size, _at, mtime, _ct = struct.unpack(
                    "<4sIQQIIIIQqqq", reply
                )
                result = RemoteStat(0, 0, 0) if error else RemoteStat(mode, size, mtime)
            else:
                _, mode, size, mtime = struct.unpack("<4sIII", conn.read_exact(16))
                result = RemoteStat(mode, size, mtime)
            _quit(conn)
        return result


def _read_or_eof(conn: _Conn, n: int) -> bytes | None:
    """n bytes, or None if the stream ends cleanly before the first byte."""
    first = conn.read_some(n)
    if not first:
        return None
    return first + (conn.read_exact(n - len(first)) if len(first) < n else b"")


def _check_path(encoded: bytes, remote: str) -> None:
    if len(encoded) > MAX_SYNC_PATH:
        raise DeviceError(f"device path too long for adb sync ({len(encoded)} bytes): {remote}")


def _fail_text(conn: _Conn, length: int) -> str:
    if length > MAX_FAIL_MESSAGE:
        return f"(a {length}-byte failure message, not read)"
    return conn.read_exact(length).decode("utf-8", "replace")


def _quit(conn: _Conn) -> None:
    """End the sync session politely; the device may already have closed it."""
    with contextlib.suppress(DeviceError):
        conn.send(b"QUIT" + struct.pack("<I", 0))


def _decode(b: bytes | bytearray) -> str:
    return bytes(b).decode("utf-8", "backslashreplace")
