"""One ADB stream (OPEN ... CLSE) with stop-and-wait flow control (ADB_SPEC.md §1.6).

The connection's reader thread feeds a stream (``deliver``, ``ready``,
``remote_close``); the stream's service thread reads and writes bytes through it.
The reader thread never blocks on a service, so one slow stream cannot stall the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from harness.adbd.packets import A_CLSE, A_OKAY, A_WRTE, ProtocolError

SendFn = Callable[[int, int, int, bytes], None]


class StreamClosed(ProtocolError):
    """The stream ended (host CLSE or lost connection) while a service used it."""


class Stream:
    """Byte pipe between a service and one host socket.

    Incoming host WRTEs are acknowledged at once while the inbox is small, so the host
    keeps sending while the service works; past ``2 * maxdata`` the OKAY is held back
    until the service has read, which bounds memory per stream.
    """

    def __init__(
        self,
        local_id: int,
        remote_id: int,
        maxdata: int,
        send: SendFn,
        on_finish: Callable[[Stream], None],
    ) -> None:
        self.local_id = local_id
        self.remote_id = remote_id
        self.maxdata = maxdata
        self._send = send
        self._on_finish = on_finish
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._inbox = bytearray()
        self._inbox_limit = 2 * maxdata
        self._ack_pending = False
        self._can_send = True  # OPEN implies READY: one WRTE may follow our OKAY
        self._closed = False
        self._clse_sent = False

    # --- called by the connection's reader thread ---------------------------------

    def deliver(self, data: bytes) -> None:
        """Host WRTE payload arrived: queue it and acknowledge (now or once drained)."""
        with self._cond:
            if self._closed:
                return
            self._inbox += data
            ack_now = len(self._inbox) <= self._inbox_limit
            self._ack_pending = not ack_now
            self._cond.notify_all()
        if ack_now:
            self._send_quietly(A_OKAY)

    def ready(self) -> None:
        """Host OKAY: the next WRTE may go out."""
        with self._cond:
            self._can_send = True
            self._cond.notify_all()

    def remote_close(self) -> bool:
        """Host CLSE; returns True if the caller should echo CLSE (we have not sent one)."""
        with self._cond:
            echo = not self._clse_sent
            self._closed = True
            self._clse_sent = True
            self._cond.notify_all()
        return echo

    def abort(self) -> None:
        """The connection is gone: wake the service; nothing more goes on the wire."""
        with self._cond:
            self._closed = True
            self._clse_sent = True
            self._cond.notify_all()

    # --- called by the service thread ----------------------------------------------

    @property
    def closed(self) -> bool:
        """True once either side closed the stream."""
        return self._closed

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        """Up to ``max_bytes`` of host data; b'' once the stream is closed and drained."""
        with self._cond:
            while not self._inbox and not self._closed:
                self._cond.wait()
            data = bytes(self._inbox[:max_bytes])
            del self._inbox[:max_bytes]
            release = self._ack_pending and len(self._inbox) <= self._inbox_limit
            if release:
                self._ack_pending = False
        if release:
            self._send_quietly(A_OKAY)
        return data

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or StreamClosed if the host closes first."""
        parts: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = self.read(remaining)
            if not chunk:
                raise StreamClosed(f"stream closed with {remaining} of {size} bytes unread")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        """Send ``data`` as WRTEs of at most maxdata, one per host OKAY."""
        view = memoryview(data)
        with self._write_lock:  # keeps one caller's bytes contiguous on the wire
            for start in range(0, len(view), self.maxdata):
                self._wait_ready()
                try:
                    self._send(
                        A_WRTE, self.local_id, self.remote_id, view[start : start + self.maxdata]
                    )
                except OSError as exc:
                    self.abort()
                    raise StreamClosed(f"connection lost: {exc}") from exc

    def _wait_ready(self) -> None:
        with self._cond:
            while not self._can_send and not self._closed:
                self._cond.wait()
            if self._closed:
                raise StreamClosed("stream closed by host")
            self._can_send = False

    def close(self) -> None:
        """End the stream from our side: CLSE(local, remote) unless already closed."""
        with self._cond:
            send = not self._clse_sent
            self._closed = True
            self._clse_sent = True
            self._cond.notify_all()
        if send:
            self._send_quietly(A_CLSE)
        self._on_finish(self)

    def _send_quietly(self, command: int) -> None:
        # OKAY/CLSE to a dead connection: the reader thread notices and cleans up.
        try:
            self._send(command, self.local_id, self.remote_id, b"")
        except OSError:
            self.abort()


class StreamBuffer:
    """Coalesces small writes (sync replies) into maxdata-sized WRTEs."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        """Queue bytes; full maxdata chunks go out immediately."""
        self._buf += data
        size = self._stream.maxdata
        if len(self._buf) >= size:
            whole = len(self._buf) - len(self._buf) % size
            self._stream.write(bytes(self._buf[:whole]))
            del self._buf[:whole]

    def flush(self) -> None:
        """Send whatever is queued."""
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            self._stream.write(data)
