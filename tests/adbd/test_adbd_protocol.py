"""Stream-level behaviour driven by hand: shell protocol v2 with a pty, host hang-up."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

from harness.adbd import AdbDaemon
from harness.adbd.packets import A_CLSE, A_OKAY, A_OPEN, A_WRTE
from harness.adbd.shell import ID_EXIT, ID_STDIN, ID_WINDOW_SIZE, shell_packet


def collect_shell_v2(client, host_id: int) -> tuple[bytes, int]:
    """Read WRTEs (acknowledging each) until CLSE; return (stdout bytes, exit status)."""
    stream = bytearray()
    while True:
        packet = client.read()
        if packet.command == A_CLSE:
            break
        if packet.command == A_WRTE:
            stream += packet.data
            client.send(A_OKAY, host_id, packet.arg0)
    output, status, offset = bytearray(), None, 0
    while offset < len(stream):
        packet_id, length = struct.unpack_from("<BI", stream, offset)
        payload = stream[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if packet_id == ID_EXIT:
            status = payload[0]
        else:
            output += payload
    assert status is not None, bytes(stream)
    return bytes(output), status


def test_pty_shell_honours_window_size(daemon: AdbDaemon, raw_client) -> None:
    client = raw_client(daemon.port)
    client.send(A_OPEN, 1, 0, b"shell,v2,pty:read go; stty size; tty; exit 5\0")
    okay = client.read()
    assert okay.command == A_OKAY
    # Window size first, then the line that lets the command go on: order is kept.
    data = shell_packet(ID_WINDOW_SIZE, b"33x111,0x0\0") + shell_packet(ID_STDIN, b"go\n")
    client.send(A_WRTE, 1, okay.arg0, data)
    output, status = collect_shell_v2(client, 1)
    assert status == 5
    assert b"33 111" in output and b"/dev/pts/" in output


def test_host_close_hangs_up_the_child(daemon: AdbDaemon, raw_client) -> None:
    pid_file = Path(daemon.sandbox.root, "pid")
    client = raw_client(daemon.port)
    client.send(A_OPEN, 2, 0, b"shell:echo $$ > pid; exec sleep 60\0")
    okay = client.read()
    assert okay.command == A_OKAY
    for _ in range(200):  # wait for the shell to record its pid
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    client.send(A_CLSE, 2, okay.arg0)
    echo = client.read()
    assert (echo.command, echo.arg0, echo.arg1) == (A_CLSE, okay.arg0, 2)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"child {pid} survived the host's CLSE")
