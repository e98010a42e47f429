"""Direct ADB over TCP with adb-shell 0.4.4, working around what it lacks.

adb-shell returns no exit code and merges stderr into stdout, so every command is
wrapped: stderr goes to a device temp file, and a line with a per-call random nonce
and `$?` follows stdout. Output cannot forge the sentinel (it does not know the nonce).
adb-shell also mishandles concurrent calls on one connection (ADB_SPEC.md §6), so
each transport serialises its calls; a dropped connection is retried on a fresh one.
A streamed shell (the runner, minutes long) gets a connection of its own, so the
host can pull a finished cell's outputs while the runner goes on.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import TypeVar

from harness.devices.base import RemoteStat, ShellResult
from harness.errors import DeviceError, env_seconds

T = TypeVar("T")
RETRIES = 2  # fresh connections tried after the first failure


REBOOT_WAIT_S = (0.25, 0.5, 1.0, 2.0)  # a device that was up and now refuses may be rebooting


class _Dropped(DeviceError):
    """The device closed the connection during the handshake: a retry may work."""


class _Refused(DeviceError):
    """Nothing listens on the port (yet): a device that was up may be restarting adbd."""


def io_timeout() -> float:
    """Seconds one packet may take (connect, auth, each sync chunk): $HARNESS_ADB_TIMEOUT.

    adb-shell notices a dropped TCP connection only when a read times out (ADB_SPEC.md
    §6.2), so this bounds how long a lost connection goes unnoticed during a transfer.
    """
    return env_seconds("HARNESS_ADB_TIMEOUT", 10.0)


def _fast_checksum(data) -> int:
    """ADB's payload "checksum" (a byte sum mod 2**32), computed with numpy."""
    import numpy as np

    if isinstance(data, str):
        data = data.encode("latin-1")
    return int(np.frombuffer(bytes(data), dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF


def _install_fast_checksum() -> None:
    # adb-shell 0.4.4 sums every payload byte in pure Python (about 1 s per 64 MiB on
    # both send and receive), which caps pushes far below the wire; same result, faster.
    from adb_shell import adb_device, adb_message

    adb_message.checksum = _fast_checksum
    adb_device.checksum = _fast_checksum


def _transport(host: str, port: int):
    """adb-shell's TCP transport, fixed: a closed socket is an error at once (adb-shell
    reads b'' in a busy loop until its read timeout, which for a runner is the whole job's
    timeout: ADB_SPEC.md §6.2), and a partial send() is finished (§6.5).
    """
    from adb_shell.transport.tcp_transport import TcpTransport

    class EofAwareTcpTransport(TcpTransport):
        def bulk_read(self, numbytes, transport_timeout_s):
            data = super().bulk_read(numbytes, transport_timeout_s)
            if not data:
                raise ConnectionResetError(errno.ECONNRESET, "the device closed the connection")
            return data

        def bulk_write(self, data, transport_timeout_s):
            view = memoryview(data)
            while view:
                view = view[super().bulk_write(view, transport_timeout_s) :]
            return len(data)

    return EofAwareTcpTransport(host, port)


def default_key_path() -> Path:
    """~/.android/adbkey: the key phones already trust; created (0600) when missing."""
    return Path(os.environ.get("HARNESS_ADB_KEY", Path.home() / ".android" / "adbkey"))


def load_signer(key_path: Path | None = None):
    """An adb-shell signer for the user's ADB key, creating the key pair if needed."""
    from adb_shell.auth.sign_pythonrsa import PythonRSASigner

    from harness.adbd.keys import ensure_adb_keypair

    pair = ensure_adb_keypair(key_path or default_key_path())
    return PythonRSASigner.FromRSAKeyPath(str(pair.private_key))


class DirectTransport:
    """One device at HOST:PORT, reached with adb-shell's AdbDeviceTcp."""

    def __init__(self, host: str, port: int, key_path: Path | None = None):
        self.host, self.port = host, port
        self.serial = f"{host}:{port}"
        self._key_path = key_path
        self._device = None
        self._was_up = False  # connected at least once: a refusal now may be a reboot
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------

    def connect(self) -> None:
        """Open (or reopen) the connection; DeviceError says plainly what went wrong.

        A connection the device cuts during CNXN/AUTH (flaky cable, adbd restarting) is
        tried again, up to RETRIES times; a refusal or a silent device is not.
        """
        for attempt in range(1 + RETRIES):
            try:
                return self._connect_once()
            except _Dropped:
                if attempt == RETRIES:
                    raise

    def _connect_once(self) -> None:
        from adb_shell.adb_device import AdbDevice
        from adb_shell.exceptions import DeviceAuthError

        self.close()
        _install_fast_checksum()
        timeout = io_timeout()
        device = AdbDevice(self._adb_transport(), default_transport_timeout_s=timeout)
        offered_key: list[bool] = []  # adb-shell calls back when it offers its public key
        try:
            signer = load_signer(self._key_path)
            device.connect(
                rsa_keys=[signer],
                auth_timeout_s=timeout,
                read_timeout_s=timeout,
                auth_callback=lambda _device: offered_key.append(True),
            )
        except ConnectionRefusedError as exc:
            raise _Refused(f"{self.serial}: connection refused (is the device listening?)") from exc
        except DeviceAuthError as exc:
            raise DeviceError(
                f"{self.serial}: unauthorized: the device rejected this host's ADB key"
            ) from exc
        except Exception as exc:
            name = type(exc).__name__
            dropped = isinstance(exc, ConnectionError)
            with contextlib.suppress(Exception):
                device.close()
            if dropped:  # the device hung up mid-handshake: worth another try
                raise _Dropped(f"{self.serial}: connection closed during connect/auth") from exc
            if "Timeout" in name and offered_key:  # it has our key and stays silent
                raise DeviceError(
                    f"{self.serial}: unauthorized: no answer after offering this host's "
                    "ADB key (accept it on the device, or add it to its adb_keys)"
                ) from exc
            if "Timeout" in name:  # silent before any AUTH: stalled, busy, or not ADB
                raise _Dropped(
                    f"{self.serial}: no answer during connect/auth (stalled, unauthorized "
                    "or not an ADB device)"
                ) from exc
            raise DeviceError(f"{self.serial}: cannot connect: {name}: {exc}") from exc
        self._device = device
        self._was_up = True

    def _adb_transport(self):
        """adb-shell's transport for this device (TCP here; USB in UsbTransport)."""
        return _transport(self.host, self.port)

    def close(self) -> None:
        if self._device is not None:
            with contextlib.suppress(Exception):
                self._device.close()
            self._device = None

    def _call(self, what: str, fn: Callable[[object], T], retry: bool = True) -> T:
        """Run fn(device) under the lock, retrying a dropped connection on a fresh one.

        Connecting is always retried when the device hung up or went silent mid-handshake
        (nothing ran yet); fn itself only when ``retry`` (it may have side effects).
        """
        last: Exception | None = None
        waits = list(REBOOT_WAIT_S)
        with self._lock:
            attempts = 1 + RETRIES
            while attempts > 0:
                attempts -= 1
                try:
                    if self._device is None:
                        self._connect_once()
                except _Dropped as exc:
                    last = exc
                    continue
                except _Refused as exc:  # waiting for a restarting device costs no attempt
                    last = exc
                    if not (self._was_up and waits):
                        break
                    time.sleep(waits.pop(0))
                    attempts += 1
                    continue
                except DeviceError as exc:  # unauthorized: retrying will not help
                    last = exc
                    break
                try:
                    return fn(self._device)
                except _operation_errors() as exc:
                    if _is_remote_failure(exc):
                        raise DeviceError(f"{self.serial}: {what}: {_text(exc)}") from exc
                    last = exc
                self.close()
                if not retry:
                    break
        raise DeviceError(f"{self.serial}: {what} failed: {_text(last)}") from last

    # -- operations ---------------------------------------------------------------

    def shell(self, command: str, timeout: float) -> ShellResult:
        nonce = secrets.token_hex(8)
        wrapped = wrap_with_sentinel(command, nonce)
        raw = self._call(
            "shell",
            # The transport timeout bounds each silent wait: a runner is silent while a
            # cell runs, which may take far longer than HARNESS_ADB_TIMEOUT. A dropped
            # connection is still noticed at once (EOF-aware transport).
            lambda d: d.shell(
                wrapped,
                transport_timeout_s=timeout,
                read_timeout_s=timeout,
                timeout_s=timeout,
                decode=False,
            ),
            retry=False,  # a command may have side effects: never run it twice
        )
        return parse_sentinel(bytes(raw), nonce)

    def shell_stream(
        self, command: str, timeout: float, idle: float
    ) -> Generator[bytes, None, ShellResult]:
        """Stdout as it arrives, on a connection of its own; the exit code at the end.

        adb-shell's read timeout is per packet, so `idle` bounds each silence (the
        runner heartbeats every second); `timeout` is checked as packets arrive.
        """
        nonce = secrets.token_hex(8)
        wrapped = wrap_with_sentinel(command, nonce)
        twin = self._twin()
        try:
            self._connect_twin(twin)
            deadline = time.monotonic() + timeout

            def chunks() -> Iterable[bytes]:
                try:
                    for chunk in twin._device.streaming_shell(
                        wrapped, transport_timeout_s=idle, read_timeout_s=idle, decode=False
                    ):
                        yield bytes(chunk)
                        if time.monotonic() > deadline:
                            raise DeviceError(f"{self.serial}: shell timed out after {timeout:g} s")
                except _operation_errors() as exc:
                    raise DeviceError(f"{self.serial}: shell failed: {_text(exc)}") from exc

            return (yield from sentinel_stream(chunks(), nonce, self.serial))
        finally:
            twin.close()

    def _twin(self) -> DirectTransport:
        """Another connection to the same device."""
        return DirectTransport(self.host, self.port, self._key_path)

    def _connect_twin(self, twin: DirectTransport) -> None:
        # as in _call: a device that was up and now refuses may be rebooting
        waits = list(REBOOT_WAIT_S) if self._was_up else []
        while True:
            try:
                return twin.connect()
            except _Refused:
                if not waits:
                    raise
                time.sleep(waits.pop(0))

    def push(self, local: Path, remote: str, timeout: float) -> None:
        self._call(
            "push",
            lambda d: d.push(
                str(local), remote, st_mode=0o100644, read_timeout_s=min(timeout, io_timeout())
            ),
        )

    def pull(self, remote: str, limit: int, timeout: float) -> bytes:
        st = self.stat(remote, timeout)
        if not st.exists:
            raise DeviceError(f"{self.serial}: {remote}: no such file")
        if st.size > limit:
            raise DeviceError(f"{self.serial}: {remote}: {st.size} bytes, over the {limit} limit")

        def pull(d) -> bytes:
            buf = io.BytesIO()
            d.pull(remote, buf, read_timeout_s=min(timeout, io_timeout()))
            return buf.getvalue()

        data = self._call("pull", pull)
        if len(data) > limit:
            raise DeviceError(f"{self.serial}: {remote}: grew past the {limit}-byte limit")
        return data

    def stat(self, remote: str, timeout: float) -> RemoteStat:
        mode, size, mtime = self._call(
            "stat", lambda d: d.stat(remote, read_timeout_s=min(timeout, io_timeout()))
        )
        return RemoteStat(mode, size, mtime)


def wrap_with_sentinel(command: str, nonce: str) -> str:
    """`command` with stderr to a temp file, then a `<nonce>:<exit code>` line, then stderr.

    The command runs in a subshell, so an `exit N` in it ends only the subshell and the
    sentinel still follows (a `{ ...; }` group would end the whole shell first).
    """
    err = f'"${{TMPDIR:-/data/local/tmp}}"/.harness-err-{nonce}'
    return (
        f"( {command}\n) 2>{err}; rc=$?; printf '\\n{nonce}:%s\\n' \"$rc\"; "
        f"cat {err} 2>/dev/null; rm -f {err}"
    )


def parse_sentinel(raw: bytes, nonce: str) -> ShellResult:
    """Split wrapped output into stdout, exit code and stderr; DeviceError if cut short."""
    marker = f"\n{nonce}:".encode()
    at = raw.rfind(marker)
    if at < 0:
        raise DeviceError("the device closed the shell before the command finished")
    rest = raw[at + len(marker) :]
    code, _, stderr = rest.partition(b"\n")
    try:
        exit_code = int(code)
    except ValueError as exc:
        raise DeviceError("unreadable exit status from the device") from exc
    return ShellResult(exit_code, _decode(raw[:at]), _decode(stderr))


def sentinel_stream(
    chunks: Iterable[bytes], nonce: str, serial: str
) -> Generator[bytes, None, ShellResult]:
    """Yield the stdout of sentinel-wrapped output as it arrives; return the exit code
    and stderr (stdout left empty). DeviceError when the stream ends before the sentinel.

    Bytes go out at once unless they may begin the `<nonce>:` token, so the last line
    of a quiet command is not held back; the price is the sentinel's own newline, which
    ends the yielded stdout (one empty line more for a line reader)."""
    token = f"{nonce}:".encode()
    it = iter(chunks)
    held, prev = b"", b"\n"  # prev: the last byte already yielded
    for chunk in it:
        held += chunk
        at = _token_at_line_start(held, token, prev)
        if at >= 0:
            if at:
                yield held[:at]
            rest = held[at + len(token) :] + b"".join(it)
            code, _, stderr = rest.partition(b"\n")
            try:
                return ShellResult(int(code), "", _decode(stderr))
            except ValueError as exc:
                raise DeviceError(f"{serial}: unreadable exit status from the device") from exc
        cut = len(held) - _partial_token(held, token)
        if cut > 0:
            yield held[:cut]
            prev, held = held[cut - 1 : cut], held[cut:]
    raise DeviceError(f"{serial}: the device closed the shell before the command finished")


def _token_at_line_start(held: bytes, token: bytes, prev: bytes) -> int:
    at = held.find(token)
    while at >= 0:
        if (held[at - 1 : at] if at else prev) == b"\n":
            return at
        at = held.find(token, at + 1)
    return -1


def _partial_token(held: bytes, token: bytes) -> int:
    """Length of the longest tail of `held` that is a proper prefix of `token`."""
    for k in range(min(len(token) - 1, len(held)), 0, -1):
        if held.endswith(token[:k]):
            return k
    return 0


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _operation_errors() -> tuple[type[BaseException], ...]:
    from adb_shell import exceptions as e

    return (
        OSError,
        e.AdbConnectionError,
        e.AdbTimeoutError,
        e.TcpTimeoutException,
        e.InvalidResponseError,
        e.InvalidChecksumError,
        e.InvalidCommandError,
        e.AdbCommandFailureException,
        e.PushFailedError,
    )


def _is_remote_failure(exc: BaseException) -> bool:
    """The device answered with FAIL: retrying on a new connection will not help."""
    from adb_shell import exceptions as e

    return isinstance(exc, e.AdbCommandFailureException | e.PushFailedError)


def _text(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class UsbTransport(DirectTransport):
    """A phone on USB reached with adb-shell directly (no adb server): `--device usb:SERIAL`.

    Needs the optional extra: pip install 'harness[usb]' (libusb1).
    """

    def __init__(self, serial: str | None, key_path: Path | None = None):
        super().__init__("usb", 0, key_path)
        self.usb_serial = serial or None
        self.serial = f"usb:{serial}" if serial else "usb"

    def shell_stream(
        self, command: str, timeout: float, idle: float
    ) -> Generator[bytes, None, ShellResult]:
        """A USB interface takes one connection: the output comes when the command ends."""
        result = self.shell(command, timeout)
        if result.stdout:
            yield result.stdout.encode()
        return ShellResult(result.exit_code, "", result.stderr)

    def _adb_transport(self):
        try:
            from adb_shell.transport.usb_transport import UsbTransport as AdbUsb
        except ImportError as exc:
            raise DeviceError(
                "USB devices need the usb extra: pip install 'harness[usb]' (libusb1)"
            ) from exc
        try:
            return AdbUsb.find_adb(serial=self.usb_serial)
        except Exception as exc:  # no such device, or no permission on /dev/bus/usb
            raise DeviceError(f"{self.serial}: no USB ADB device found ({_text(exc)})") from exc
