"""ADB transport wire codec: the 24-byte header, checksums, and a bounded socket reader.

Every value here follows ADB_SPEC.md §1.1-§1.3: six little-endian uint32 fields,
``magic = command ^ 0xFFFFFFFF`` and ``data_check`` = byte sum of the payload.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<6I")
HEADER_SIZE = HEADER.size  # 24


def _command_id(name: bytes) -> int:
    return int.from_bytes(name, "little")


A_SYNC = _command_id(b"SYNC")
A_CNXN = _command_id(b"CNXN")
A_AUTH = _command_id(b"AUTH")
A_OPEN = _command_id(b"OPEN")
A_OKAY = _command_id(b"OKAY")
A_CLSE = _command_id(b"CLSE")
A_WRTE = _command_id(b"WRTE")

A_VERSION_MIN = 0x01000000
A_VERSION = 0x01000001  # "skip checksum" version; we still send real checksums (§1.2)

MAX_PAYLOAD_V1 = 4096
MAX_PAYLOAD_V2 = 256 * 1024
MAX_PAYLOAD = 1024 * 1024
ALLOWED_MAXDATA = (MAX_PAYLOAD_V1, MAX_PAYLOAD_V2, MAX_PAYLOAD)

# CNXN/AUTH travel before the peer's limit is known, so they must fit in V1 (§1.3).
HANDSHAKE_MAX_PAYLOAD = MAX_PAYLOAD_V1

AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3


class ProtocolError(Exception):
    """The peer broke the wire protocol; the connection (or session) must end."""


class ConnectionClosed(ProtocolError):
    """The TCP peer went away in the middle of (or before) a packet."""


@dataclass(frozen=True)
class Packet:
    """One decoded ADB message."""

    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        """The four-letter command as text, for logs."""
        return self.command.to_bytes(4, "little").decode("ascii", "replace")


def checksum(data: bytes) -> int:
    """Byte sum of ``data`` mod 2**32 (adb-shell verifies it on every packet)."""
    if len(data) < 4096:
        return sum(data) & 0xFFFFFFFF
    # Python's sum() over a 1 MiB payload costs ~20 ms; numpy does it in well under 1 ms.
    import numpy

    return int(numpy.frombuffer(data, dtype=numpy.uint8).sum(dtype=numpy.uint64)) & 0xFFFFFFFF


def encode_packet(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    """Serialise one message: header with real checksum and magic, then the payload."""
    header = HEADER.pack(
        command,
        arg0 & 0xFFFFFFFF,
        arg1 & 0xFFFFFFFF,
        len(data),
        checksum(data),
        command ^ 0xFFFFFFFF,
    )
    return header + bytes(data)


def decode_header(raw: bytes, max_payload: int) -> tuple[int, int, int, int]:
    """Validate a 24-byte header; return (command, arg0, arg1, data_length).

    Like adb's ``check_header`` this checks only the magic and the payload bound;
    ``data_check`` is deliberately not verified (§1.2).
    """
    if len(raw) != HEADER_SIZE:
        raise ProtocolError(f"short header: {len(raw)} bytes")
    command, arg0, arg1, length, _check, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic {magic:#010x} for command {command:#010x}")
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes exceeds limit {max_payload}")
    return command, arg0, arg1, length


def decode_packet(raw: bytes, max_payload: int) -> Packet:
    """Decode a whole message held in memory (header + exactly its payload)."""
    command, arg0, arg1, length = decode_header(bytes(raw[:HEADER_SIZE]), max_payload)
    data = bytes(raw[HEADER_SIZE:])
    if len(data) != length:
        raise ProtocolError(f"payload is {len(data)} bytes, header says {length}")
    return Packet(command, arg0, arg1, data)


class PacketReader:
    """Reads packets from a socket through one buffer, never past the payload bound.

    The bound is read per packet, so it can grow from the handshake limit to the
    negotiated maxdata once CNXN is done.
    """

    _RECV_SIZE = 256 * 1024

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        # TCP_QUICKACK is Linux-only; elsewhere delayed ACKs simply stay on.
        self._quickack = getattr(socket, "TCP_QUICKACK", None)

    def _fill(self, size: int) -> None:
        while len(self._buf) < size:
            chunk = self._sock.recv(max(self._RECV_SIZE, size - len(self._buf)))
            if not chunk:
                raise ConnectionClosed("peer closed the connection")
            self._buf += chunk
            self._ack_now()

    def _ack_now(self) -> None:
        # Linux re-enables delayed ACK after each recv; clearing it again lets a client
        # that sends header and payload in two writes without TCP_NODELAY (adb-shell)
        # avoid a ~40 ms Nagle/delayed-ACK stall per packet (§6.4).
        if self._quickack is None:
            return
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)

    def _take(self, size: int) -> bytes:
        self._fill(size)
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def read_packet(self, max_payload: int) -> Packet:
        """Block for the next packet; ProtocolError on a bad or oversized header."""
        command, arg0, arg1, length = decode_header(self._take(HEADER_SIZE), max_payload)
        return Packet(command, arg0, arg1, self._take(length) if length else b"")
