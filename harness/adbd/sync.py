"""The ``sync:`` service: STAT/STA2/LST2/LIST/LIS2/RECV/SEND/QUIT (ADB_SPEC.md §3).

A session reads requests from a byte stream (WRTE boundaries mean nothing) and writes
replies through a buffered writer. Every path goes through the Sandbox; filesystem
errors become FAIL replies or zeroed stat records, never exceptions. Only the
protocol itself can raise (SyncError / StreamClosed, both ProtocolError).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Callable
from typing import Protocol

from harness.adbd.faults import FaultInjector, InjectedFault, Tripwire
from harness.adbd.packets import ProtocolError
from harness.adbd.sandbox import Sandbox

REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")  # 72 bytes
DENT_V1 = struct.Struct("<4sIIII")  # 20 bytes + name
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # 76 bytes + name

MAX_PATH_LENGTH = 1024
MAX_DATA_CHUNK = 64 * 1024
RECV_CHUNK = 65528  # what adbd sends; keeps DATA header + chunk under 64 KiB
NAME_MAX = 255


class SyncError(ProtocolError):
    """A malformed sync request; the session ends after a FAIL reply."""


class SyncOutput(Protocol):
    """Where replies go (a StreamBuffer in the daemon, a list in tests)."""

    def write(self, data: bytes) -> None: ...

    def flush(self) -> None: ...


def fail_message(message: str) -> bytes:
    """A ``FAIL`` reply carrying ``message``."""
    body = message.encode("utf-8", "replace")
    return REQUEST.pack(b"FAIL", len(body)) + body


_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def parse_c_ulong(text: str) -> int:
    """``strtoul(text, 0)``: 0x.. is hex, a leading 0 octal, else decimal; junk is 0."""
    text = text.strip()
    digits, base = text, 10
    if text[:2].lower() == "0x":
        digits, base = text[2:], 16
    elif text.startswith("0") and len(text) > 1:
        digits, base = text[1:], 8
    end = 0
    while end < len(digits) and digits[end] in _DIGITS[base]:
        end += 1
    return int(digits[:end], base) & 0xFFFFFFFF if end else 0


def adb_file_mode(mode: int) -> int:
    """adbd's rule: keep 0777, then copy user bits to group and group bits to other."""
    mode &= 0o777
    mode |= (mode & 0o700) >> 3
    mode |= (mode & 0o070) >> 3
    return mode


def stat_v1(st: os.stat_result | None) -> bytes:
    """16-byte STAT reply; all zeros when the path could not be stat'ed."""
    if st is None:
        return STAT_V1.pack(b"STAT", 0, 0, 0)
    return STAT_V1.pack(
        b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF, int(st.st_mtime) & 0xFFFFFFFF
    )


def _v2_fields(st: os.stat_result) -> tuple[int, ...]:
    return (
        st.st_dev & (2**64 - 1),
        st.st_ino & (2**64 - 1),
        st.st_mode & 0xFFFFFFFF,
        st.st_nlink & 0xFFFFFFFF,
        st.st_uid & 0xFFFFFFFF,
        st.st_gid & 0xFFFFFFFF,
        st.st_size & (2**64 - 1),
        int(st.st_atime),
        int(st.st_mtime),
        int(st.st_ctime),
    )


def stat_v2(command: bytes, st: os.stat_result | None, error: int = 0) -> bytes:
    """72-byte STA2/LST2 reply; ``error`` is a Linux errno and zeroes the rest."""
    if st is None:
        return STAT_V2.pack(command, error or errno.ENOENT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return STAT_V2.pack(command, 0, *_v2_fields(st))


class SyncSession:
    """Serve sync requests until QUIT, a fatal FAIL, or the end of the stream."""

    def __init__(
        self,
        read_exact: Callable[[int], bytes],
        out: SyncOutput,
        sandbox: Sandbox,
        faults: FaultInjector | None = None,
        drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._read_exact = read_exact
        self._out = out
        self._sandbox = sandbox
        self._faults = faults
        self._drop = drop
        self._handlers: dict[bytes, Callable[[bytes], bool]] = {
            b"STAT": self._stat,
            b"STA2": self._stat2,
            b"LST2": self._lstat2,
            b"LIST": self._list,
            b"LIS2": self._list2,
            b"RECV": self._recv,
            b"SEND": self._send,
        }

    def run(self) -> None:
        """Serve requests; returns when the session should end (caller closes stream)."""
        try:
            while self._serve_one():
                self._out.flush()
        finally:
            self._out.flush()

    def _serve_one(self) -> bool:
        command, length = REQUEST.unpack(self._read_exact(REQUEST.size))
        if command == b"QUIT":
            return False
        handler = self._handlers.get(command)
        if handler is None:
            code = int.from_bytes(command, "little")
            self._out.write(fail_message(f"unknown command {code:08x}"))
            return False
        if length > MAX_PATH_LENGTH:
            self._out.write(fail_message("path too long"))
            return False
        return handler(self._read_exact(length))

    def _arm(self, event: str, path: bytes) -> Tripwire | None:
        if self._faults is None:
            return None
        return self._faults.arm(event, os.fsdecode(path), self._drop)

    # --- stat ------------------------------------------------------------------------

    def _lstat(self, path: bytes) -> os.stat_result:
        return os.lstat(self._sandbox.resolve_parent(path))

    def _stat(self, path: bytes) -> bool:
        try:
            st: os.stat_result | None = self._lstat(path)
        except OSError:
            st = None
        self._out.write(stat_v1(st))
        return True

    def _stat2_common(self, command: bytes, path: bytes, follow: bool) -> bool:
        try:
            host = self._sandbox.resolve(path) if follow else self._sandbox.resolve_parent(path)
            st = os.stat(host) if follow else os.lstat(host)
            self._out.write(stat_v2(command, st))
        except OSError as exc:
            self._out.write(stat_v2(command, None, exc.errno or errno.EIO))
        return True

    def _stat2(self, path: bytes) -> bool:
        return self._stat2_common(b"STA2", path, follow=True)

    def _lstat2(self, path: bytes) -> bool:
        return self._stat2_common(b"LST2", path, follow=False)

    # --- list ------------------------------------------------------------------------

    def _entries(self, path: bytes):
        """Yield (name bytes, lstat) for '.', '..' and every entry; errors end quietly."""
        try:
            directory = self._sandbox.resolve(path)
            names = [entry.name for entry in os.scandir(directory)]
        except OSError:
            return
        # '..' of the root must not reveal the host directory above it.
        parent = directory if directory == self._sandbox.root else os.path.dirname(directory)
        for name, host in [(".", directory), ("..", parent)] + [
            (n, os.path.join(directory, n)) for n in names
        ]:
            try:
                yield os.fsencode(name)[:NAME_MAX], os.lstat(host)
            except OSError:
                continue  # vanished or unreadable entries are skipped, as adbd does

    def _list(self, path: bytes) -> bool:
        for name, st in self._entries(path):
            mode, size = st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF
            mtime = int(st.st_mtime) & 0xFFFFFFFF
            self._out.write(DENT_V1.pack(b"DENT", mode, size, mtime, len(name)) + name)
        self._out.write(DENT_V1.pack(b"DONE", 0, 0, 0, 0))
        return True

    def _list2(self, path: bytes) -> bool:
        for name, st in self._entries(path):
            self._out.write(DENT_V2.pack(b"DNT2", 0, *_v2_fields(st), len(name)) + name)
        self._out.write(b"DONE" + bytes(72))
        return True

    # --- recv ------------------------------------------------------------------------

    def _recv(self, path: bytes) -> bool:
        try:
            # O_NONBLOCK so a FIFO cannot hang the session in open(); regular files ignore it.
            fd = os.open(self._sandbox.resolve(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self._out.write(fail_message(f"open failed: {os.strerror(exc.errno or errno.EIO)}"))
            return False
        tripwire = self._arm("pull", path)
        send = self._out.write if tripwire is None else _through(tripwire, self._out.write)
        try:
            kind = stat.S_IFMT(os.fstat(fd).st_mode)
            if kind not in (stat.S_IFREG, stat.S_IFDIR):  # a directory fails in read()
                raise OSError(errno.EINVAL, "not a regular file")
            while chunk := os.read(fd, RECV_CHUNK):
                send(REQUEST.pack(b"DATA", len(chunk)) + chunk)
        except OSError as exc:  # e.g. EISDIR: a directory opens fine but cannot be read
            self._out.write(fail_message(f"read failed: {_strerror(exc)}"))
            return False
        finally:
            os.close(fd)
        self._out.write(REQUEST.pack(b"DONE", 0))
        return True

    # --- send ------------------------------------------------------------------------

    def _send(self, spec: bytes) -> bool:
        """SEND "path,mode": DATA chunks then DONE mtime; reply only after DONE."""
        path, comma, mode_text = spec.rpartition(b",")
        if not comma:
            return self._discard_and_fail("missing , in ID_SEND")
        mode = parse_c_ulong(mode_text.decode("ascii", "replace"))
        if stat.S_ISLNK(mode):
            return self._send_link(path)
        return self._send_file(path, mode)

    def _read_upload(self, sink: Callable[[bytes], None]) -> int:
        """Feed DATA payloads to ``sink`` until DONE; return DONE's mtime."""
        while True:
            kind, length = REQUEST.unpack(self._read_exact(REQUEST.size))
            if kind == b"DONE":
                return length
            if kind != b"DATA":
                raise SyncError("invalid data message")
            if length > MAX_DATA_CHUNK:
                raise SyncError("oversize data message")
            sink(self._read_exact(length))

    def _discard_and_fail(self, message: str) -> bool:
        # The host sends the whole file before reading our answer; swallow it first.
        with contextlib.suppress(SyncError):
            self._read_upload(lambda _chunk: None)
        self._out.write(fail_message(message))
        return False

    def _create_file(self, path: bytes, mode: int) -> tuple[int, str]:
        if path.endswith(b"/"):
            # adbd fails here too; normalising the slash away would hide a user mistake.
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        host = self._sandbox.resolve_parent(path)
        os.makedirs(os.path.dirname(host), mode=0o775, exist_ok=True)
        _unlink_replaceable(host)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(host, flags, 0o600)
        os.fchmod(fd, adb_file_mode(mode))
        return fd, host

    def _send_file(self, path: bytes, mode: int) -> bool:
        try:
            fd, host = self._create_file(path, mode)
        except OSError as exc:
            return self._discard_and_fail(f"couldn't create file: {_strerror(exc)}")
        errors: list[OSError] = []
        done = keep = False
        tripwire = self._arm("push", path)

        def sink(chunk: bytes) -> None:
            if tripwire is None:
                return _write_all(fd, chunk, errors)
            try:
                tripwire.feed(chunk, lambda part: _write_all(fd, part, errors))
            except InjectedFault:
                raise
            except OSError as exc:  # injected ENOSPC: swallow the rest, as a full disk does
                errors.append(exc)

        try:
            mtime = self._read_upload(sink)
            if not errors:
                os.utime(fd, (mtime, mtime))
                done = True
        except SyncError as exc:
            self._out.write(fail_message(str(exc)))
            return False
        except InjectedFault:
            keep = True  # a cut or a power loss leaves the partial file, as a crash would
            raise
        except OSError as exc:
            errors.append(exc)
        finally:
            os.close(fd)
            if not done and not keep:
                _remove_quietly(host)
        if errors:
            self._out.write(fail_message(f"write failed: {_strerror(errors[0])}"))
            return False
        self._out.write(REQUEST.pack(b"OKAY", 0))
        return True

    def _send_link(self, path: bytes) -> bool:
        parts: list[bytes] = []

        def keep_bounded(chunk: bytes) -> None:
            # A link target is at most PATH_MAX; never buffer an arbitrary upload.
            if sum(map(len, parts)) <= MAX_PATH_LENGTH:
                parts.append(chunk[: MAX_PATH_LENGTH + 1])

        try:
            mtime = self._read_upload(keep_bounded)
        except SyncError as exc:
            self._out.write(fail_message(str(exc)))
            return False
        target = os.fsdecode(b"".join(parts)[: MAX_PATH_LENGTH + 1].rstrip(b"\0"))
        try:
            self._sandbox.check_link_target(path, target)
            host = self._sandbox.resolve_parent(path)
            os.makedirs(os.path.dirname(host), mode=0o775, exist_ok=True)
            _unlink_replaceable(host)
            os.symlink(target, host)
            os.utime(host, (mtime, mtime), follow_symlinks=False)
        except OSError as exc:
            self._out.write(fail_message(f"symlink failed: {_strerror(exc)}"))
            return False
        self._out.write(REQUEST.pack(b"OKAY", 0))
        return True


def _through(tripwire: Tripwire, write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``write`` with the tripwire counting (and faulting) the bytes on the way."""
    return lambda data: tripwire.feed(data, write)


def _strerror(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or errno.EIO)


def _unlink_replaceable(host: str) -> None:
    """adbd replaces regular files and symlinks, never directories or devices."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        os.unlink(host)


def _write_all(fd: int, chunk: bytes, errors: list[OSError]) -> None:
    """Write a chunk; after the first error keep swallowing data (adbd reads to DONE)."""
    if errors:
        return
    view = memoryview(chunk)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        errors.append(exc)


def _remove_quietly(host: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(host)
