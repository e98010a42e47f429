"""``shell:``, ``shell,v2,…:`` and ``exec:`` services (ADB_SPEC.md §2).

Commands run as ``/bin/sh -c CMD`` with the sandbox root as working directory,
HOME/TMPDIR inside it, ``ADBD_ROOT`` set to it and the getprop shim first on PATH.

**The shell is not a sandbox.** The process runs on the real host as the daemon's
user and can read or write anything that user can; only the sync service (push, pull,
ls, stat) is confined to the root. Device-side scripts that must work both here and on
Android address files as ``"$ADBD_ROOT/data/local/tmp/x"``: on a phone the variable is
unset and the path is the real one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness.adbd.faults import FaultInjector, InjectedFault
from harness.adbd.stream import Stream, StreamClosed

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = 0, 1, 2, 3, 4, 5
SHELL_HEADER = struct.Struct("<BI")
SPAWN_FAILED_STATUS = 126
KILL_GRACE_S = 2.0
_WINDOW_SIZE_MAX = 64
_STDIN_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ShellRequest:
    """What an OPEN asked for: command, shell protocol or not, pty or raw, TERM."""

    command: str
    protocol_v2: bool = False
    use_pty: bool = False
    term: str = "dumb"


def parse_shell_service(service: str) -> ShellRequest | None:
    """Parse ``shell[,arg]*:cmd`` or ``exec:cmd``; None if it is neither."""
    if service.startswith("exec:"):
        return ShellRequest(command=service[5:])
    name, sep, command = service.partition(":")
    if not sep or name.split(",")[0] != "shell":
        return None
    args = name.split(",")[1:]
    use_pty = not command  # adbd's default: pty for an interactive shell, raw otherwise
    term = "dumb"
    for arg in args:  # unknown arguments are ignored, as adbd does
        if arg == "pty":
            use_pty = True
        elif arg == "raw":
            use_pty = False
        elif arg.startswith("TERM="):
            term = arg[5:]
    return ShellRequest(command, protocol_v2="v2" in args, use_pty=use_pty, term=term)


def shell_packet(packet_id: int, payload: bytes) -> bytes:
    """One shell-protocol packet: id u8, length u32 LE, payload."""
    return SHELL_HEADER.pack(packet_id, len(payload)) + payload


def exit_status(returncode: int) -> int:
    """The exit byte: the status, or 0x80|signal when the child was killed."""
    return 0x80 | (-returncode & 0x7F) if returncode < 0 else returncode & 0xFF


def _spawn(request: ShellRequest, env: Mapping[str, str], cwd: str):
    """Start the child; returns (process, fd to write stdin, [(fd, packet id)...])."""
    argv = ["/bin/sh", "-c", request.command] if request.command else ["/bin/sh"]
    full_env = {**env, "TERM": request.term}
    if request.use_pty:
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)  # the master sees EOF only once no slave fd is left open here
        return proc, master, [(master, ID_STDOUT)]
    stderr = subprocess.PIPE if request.protocol_v2 else subprocess.STDOUT
    proc = subprocess.Popen(
        argv, cwd=cwd, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=stderr, start_new_session=True, close_fds=True,
    )  # fmt: skip
    outputs = [(proc.stdout.fileno(), ID_STDOUT)]
    if proc.stderr is not None:
        outputs.append((proc.stderr.fileno(), ID_STDERR))
    return proc, proc.stdin.fileno(), outputs


class ShellSession:
    """Runs one child process and pumps bytes between it and a stream."""

    def __init__(
        self,
        stream: Stream,
        request: ShellRequest,
        env: Mapping[str, str],
        cwd: str,
        faults: FaultInjector | None = None,
        drop: Callable[[], None] = lambda: None,
    ) -> None:
        self.stream = stream
        self.request = request
        self._env = env
        self._cwd = cwd
        # An injected fault (tests) fires part-way through this command's output.
        self._tripwire = faults.arm("shell", request.command, drop) if faults else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdin_fd: int | None = None
        self._stdin_lock = threading.Lock()

    def run(self) -> None:
        """Serve the stream until the child is done (or the host hangs up)."""
        try:
            self._proc, self._stdin_fd, outputs = _spawn(self.request, self._env, self._cwd)
        except OSError as exc:
            self._report_spawn_failure(exc)
            return
        pumps = [threading.Thread(target=self._pump_output, args=o, daemon=True) for o in outputs]
        for pump in pumps:
            pump.start()
        threading.Thread(target=self._pump_input, daemon=True).start()
        for pump in pumps:
            pump.join()
        status = exit_status(self._proc.wait())
        self._release_fds()
        self._finish(status)

    def _release_fds(self) -> None:
        # Under the stdin lock, so the input pump can never write to a closed fd number
        # that the kernel has meanwhile handed to another connection.
        with self._stdin_lock:
            fd, self._stdin_fd = self._stdin_fd, None
            proc = self._proc
            if self.request.use_pty and fd is not None:
                os.close(fd)
            for pipe in (proc.stdin, proc.stdout, proc.stderr) if proc else ():
                if pipe is not None:
                    pipe.close()

    def _finish(self, status: int) -> None:
        try:
            if self.request.protocol_v2 and not self.stream.closed:
                self.stream.write(shell_packet(ID_EXIT, bytes([status])))
        except StreamClosed:
            pass
        self.stream.close()

    def _report_spawn_failure(self, exc: OSError) -> None:
        message = f"error: {exc.strerror or exc}\n".encode()
        try:
            if self.request.protocol_v2:
                self.stream.write(shell_packet(ID_STDERR, message))
            else:
                self.stream.write(message)
        except StreamClosed:
            pass
        self._finish(SPAWN_FAILED_STATUS)

    # --- output: child → host -----------------------------------------------------

    def _pump_output(self, fd: int, packet_id: int) -> None:
        chunk_size = max(self.stream.maxdata - SHELL_HEADER.size, 1024)
        while True:
            try:
                data = os.read(fd, chunk_size)
            except OSError:  # EIO: the pty's last slave closed, i.e. end of output
                data = b""
            if not data:
                return
            try:
                if self._tripwire is None:
                    self._send_output(packet_id, data)
                else:
                    self._tripwire.feed(data, lambda part: self._send_output(packet_id, part))
            except (StreamClosed, InjectedFault):
                self._hang_up()
                return

    def _send_output(self, packet_id: int, data: bytes) -> None:
        if self.request.protocol_v2:
            self.stream.write(shell_packet(packet_id, data))
        else:
            self.stream.write(data)

    # --- input: host → child ------------------------------------------------------

    def _pump_input(self) -> None:
        try:
            if self.request.protocol_v2:
                self._pump_v2_input()
            else:
                while data := self.stream.read(_STDIN_CHUNK):
                    self._feed_stdin(data)
        except StreamClosed:
            pass
        # The stream is over: either we closed it (child done) or the host hung up.
        self._hang_up()

    def _pump_v2_input(self) -> None:
        while True:
            packet_id, length = SHELL_HEADER.unpack(self.stream.read_exact(SHELL_HEADER.size))
            if packet_id == ID_WINDOW_SIZE and length <= _WINDOW_SIZE_MAX:
                self._set_window_size(self.stream.read_exact(length))
                continue
            while length > 0:  # stdin and unknown ids: read in bounded chunks
                data = self.stream.read_exact(min(length, _STDIN_CHUNK))
                length -= len(data)
                if packet_id == ID_STDIN:
                    self._feed_stdin(data)
            if packet_id == ID_CLOSE_STDIN and not self.request.use_pty:
                self._close_stdin()

    def _feed_stdin(self, data: bytes) -> None:
        with self._stdin_lock:
            if self._stdin_fd is None:
                return
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._stdin_fd, view) :]
            except OSError:  # child closed its stdin; drop the rest as adbd does
                pass

    def _close_stdin(self) -> None:
        with self._stdin_lock:
            if self._stdin_fd is None or self.request.use_pty:
                return  # a pty master is closed by run(), it is also the output
            if self._proc is not None and self._proc.stdin is not None:
                self._proc.stdin.close()
            self._stdin_fd = None

    def _set_window_size(self, payload: bytes) -> None:
        if not self.request.use_pty:
            return
        try:
            text = payload.rstrip(b"\0").decode("ascii")
            rows_cols, _, pixels = text.partition(",")
            rows, cols = (int(v) for v in rows_cols.split("x"))
            xpix, ypix = (int(v) for v in pixels.split("x")) if pixels else (0, 0)
            size = struct.pack("HHHH", rows, cols, xpix, ypix)
            with self._stdin_lock:
                if self._stdin_fd is not None:
                    fcntl.ioctl(self._stdin_fd, termios.TIOCSWINSZ, size)
        except (ValueError, OSError, struct.error):
            pass  # a malformed size changes nothing

    def _hang_up(self) -> None:
        """SIGHUP the child's process group, SIGKILL it if it lingers."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGHUP)
        timer = threading.Timer(KILL_GRACE_S, _kill_if_alive, args=(proc,))
        timer.daemon = True
        timer.start()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_if_alive(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGKILL)
