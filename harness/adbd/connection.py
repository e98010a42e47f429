"""One TCP connection: CNXN/AUTH handshake, then OPEN/OKAY/WRTE/CLSE dispatch.

A connection owns one reader thread (this one), one send lock, and one service thread
per open stream. The reader only queues data and flips flags, so a stream whose
service is slow never delays packets for the other streams (ADB_SPEC.md §1.6).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from harness.adbd import auth
from harness.adbd.faults import FaultInjector
from harness.adbd.packets import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_VERSION,
    A_WRTE,
    AUTH_RSAPUBLICKEY,
    AUTH_SIGNATURE,
    AUTH_TOKEN,
    HANDSHAKE_MAX_PAYLOAD,
    Packet,
    PacketReader,
    ProtocolError,
    encode_packet,
)
from harness.adbd.sandbox import Sandbox
from harness.adbd.shell import ShellSession, parse_shell_service
from harness.adbd.stream import Stream, StreamBuffer, StreamClosed
from harness.adbd.sync import SyncSession

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 10.0  # until the host's CNXN, like adb's own connect wait
AUTH_IDLE_TIMEOUT_S = 120.0  # an unauthorized host may sit waiting; not forever
MAX_AUTH_FAILURES = 16
MIN_MAXDATA = 256

Service = Callable[[Stream], None]


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a connection needs from the daemon, fixed at daemon start."""

    sandbox: Sandbox
    shell_env: dict[str, str]
    banner: bytes
    maxdata: int
    max_streams: int
    authorized_keys: str | None  # path; None = no authentication
    faults: FaultInjector | None = None  # deliberate failures (tests); None in real use


def resolve_service(
    name: str, settings: ConnectionSettings, drop: Callable[[], None] = lambda: None
) -> Service | None:
    """Map an OPEN's service string to a callable that serves the stream, or None.

    ``drop`` cuts the whole connection; only injected faults use it.
    """
    faults = settings.faults
    if name == "sync:":
        return lambda stream: _run_sync(stream, settings.sandbox, faults, drop)
    request = parse_shell_service(name)
    if request is not None:
        env, cwd = settings.shell_env, settings.sandbox.root
        return lambda stream: ShellSession(stream, request, env, cwd, faults, drop).run()
    return None


def _run_sync(
    stream: Stream, sandbox: Sandbox, faults: FaultInjector | None, drop: Callable[[], None]
) -> None:
    SyncSession(stream.read_exact, StreamBuffer(stream), sandbox, faults, drop).run()


class AdbConnection:
    """Serves one host connection until it drops, misbehaves, or the daemon stops."""

    def __init__(self, sock: socket.socket, settings: ConnectionSettings, peer: str) -> None:
        self._sock = sock
        self._settings = settings
        self.peer = peer
        self._reader = PacketReader(sock)
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.maxdata = settings.maxdata
        self._host_maxdata = settings.maxdata

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        """Send one packet; the lock keeps packets from different threads whole."""
        packet = encode_packet(command, arg0, arg1, data)
        with self._send_lock:
            self._sock.sendall(packet)

    def close(self) -> None:
        """Shut the socket down; the reader thread then winds everything up."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def serve(self) -> None:
        """Run the connection to its end (blocking); never raises."""
        try:
            self._sock.settimeout(HANDSHAKE_TIMEOUT_S)
            self._handshake()
            self._sock.settimeout(None)
            log.info("%s: connected (maxdata %d)", self.peer, self.maxdata)
            while True:
                self._dispatch(self._reader.read_packet(self.maxdata))
        except (ProtocolError, OSError) as exc:
            log.info("%s: connection ended: %s", self.peer, exc)
        except Exception:  # a bug must not take the daemon down with it
            log.exception("%s: connection failed", self.peer)
        finally:
            self._abort_streams()
            self._sock.close()

    # --- handshake ---------------------------------------------------------------

    def _handshake(self) -> None:
        token: bytes | None = None
        failures = 0
        while True:
            packet = self._reader.read_packet(HANDSHAKE_MAX_PAYLOAD)
            if packet.command == A_CNXN:
                self._inject("cnxn")
                if self._settings.authorized_keys is None:
                    return self._accept(packet.arg1)
                self._host_maxdata = packet.arg1
                token = self._send_token()
                self._sock.settimeout(AUTH_IDLE_TIMEOUT_S)
            elif packet.command == A_AUTH and token is not None:
                if packet.arg0 == AUTH_SIGNATURE:
                    if self._signature_ok(token, packet.data):
                        return self._accept(self._host_maxdata)
                    failures += 1
                    if failures > MAX_AUTH_FAILURES:
                        raise ProtocolError("too many failed signatures")
                    token = self._send_token()
                elif packet.arg0 == AUTH_RSAPUBLICKEY:
                    # Real adbd would ask the user; a headless board cannot, so the host
                    # stays "unauthorized" until its key is added to the keys file.
                    log.warning("%s: refused unknown key %s", self.peer, _key_comment(packet))
            # Anything else before the handshake completes is ignored (§1.6).

    def _inject(self, event: str) -> None:
        """Fire a planned fault at this event, if one is armed (tests only)."""
        faults = self._settings.faults
        tripwire = faults.arm(event, "", self.close) if faults else None
        if tripwire is not None:
            tripwire.fire()

    def _send_token(self) -> bytes:
        token = auth.new_token()
        self.send(A_AUTH, AUTH_TOKEN, 0, token)
        return token

    def _signature_ok(self, token: bytes, signature: bytes) -> bool:
        path = self._settings.authorized_keys
        try:
            keys = auth.load_authorized_keys(path) if path else []
        except (OSError, auth.AuthError) as exc:  # re-read each time: keys may be added
            log.warning("cannot read authorized keys %s: %s", path, exc)
            keys = []
        key = auth.find_signing_key(keys, token, signature)
        if key is not None:
            log.info("%s: authorized by key %s", self.peer, key.comment or "(no comment)")
        return key is not None

    def _accept(self, host_maxdata: int) -> None:
        self.maxdata = max(MIN_MAXDATA, min(host_maxdata, self._settings.maxdata))
        self.send(A_CNXN, A_VERSION, self.maxdata, self._settings.banner)

    # --- streams -----------------------------------------------------------------

    def _dispatch(self, packet: Packet) -> None:
        if packet.command == A_OPEN:
            self._open(packet)
        elif packet.command in (A_OKAY, A_WRTE, A_CLSE):
            with self._streams_lock:
                stream = self._streams.get(packet.arg1)
            if stream is None or (packet.arg0 not in (0, stream.remote_id)):
                return  # unknown ids are ignored, e.g. the CLSE answering our own CLSE
            if packet.command == A_OKAY:
                stream.ready()
            elif packet.command == A_WRTE:
                stream.deliver(packet.data)
            else:
                self._forget(stream)
                if stream.remote_close():
                    self.send(A_CLSE, stream.local_id, stream.remote_id)
        elif packet.command == A_CNXN:
            # The host restarted the session on this socket: drop its streams, re-greet.
            self._abort_streams()
            self._accept(packet.arg1)

    def _open(self, packet: Packet) -> None:
        host_id = packet.arg0
        if host_id == 0:
            return
        name = packet.data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        service = resolve_service(name, self._settings, self.close)
        with self._streams_lock:
            full = len(self._streams) >= self._settings.max_streams
            if service is None or full:
                stream = None
            else:
                stream = Stream(self._new_id(), host_id, self.maxdata, self.send, self._forget)
                self._streams[stream.local_id] = stream
        if stream is None:
            log.info("%s: refused service %r%s", self.peer, name, " (too many)" if full else "")
            self.send(A_CLSE, 0, host_id)
            return
        log.debug("%s: open %d→%d %r", self.peer, host_id, stream.local_id, name)
        self.send(A_OKAY, stream.local_id, host_id)
        threading.Thread(
            target=_serve_stream, args=(service, stream), name=f"adbd-{name[:20]}", daemon=True
        ).start()

    def _new_id(self) -> int:
        # Called with _streams_lock held; ids count up from 1 and skip any still in use.
        while True:
            local_id = next(self._ids) & 0xFFFFFFFF
            if local_id and local_id not in self._streams:
                return local_id

    def _forget(self, stream: Stream) -> None:
        with self._streams_lock:
            if self._streams.get(stream.local_id) is stream:
                del self._streams[stream.local_id]

    def _abort_streams(self) -> None:
        with self._streams_lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.abort()


def _serve_stream(service: Service, stream: Stream) -> None:
    try:
        service(stream)
    except StreamClosed:
        pass
    except ProtocolError as exc:
        log.info("stream %d: protocol error: %s", stream.local_id, exc)
    except Exception:
        log.exception("stream %d: service failed", stream.local_id)
    finally:
        stream.close()


def _key_comment(packet: Packet) -> str:
    text = packet.data.rstrip(b"\0").decode("utf-8", "replace")
    return text.partition(" ")[2] or "(no comment)"
