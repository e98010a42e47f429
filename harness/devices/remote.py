"""An ADB-reachable device, built on any Transport: quoting, staging, running the runner.

Device paths are written relative to "$ADBD_ROOT": on a phone that variable is unset
and the path is the real one; under `harness serve-device` it is the sandbox root, so
the same command line works on both.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.devices.base import RemoteStat, ShellResult, Transport
from harness.errors import DeviceError, env_seconds

WORKDIR = "/data/local/tmp/harness"
TIMEOUT = 60.0
MAX_PENDING_LINE = 64 << 20


def stream_idle_timeout() -> float:
    """Longest silence of a running runner: $HARNESS_STREAM_IDLE_TIMEOUT, else 30 s.

    The runner prints a line at least every second, so 30 s of nothing is a stalled
    link or a frozen device, with room for a slow board to start Python."""
    return env_seconds("HARNESS_STREAM_IDLE_TIMEOUT", 30.0)


def quote_argv(argv: list[str]) -> str:
    """One shell command line in which every argument arrives as exactly that argument."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def device_path(path: str) -> str:
    """A quoted device path, prefixed with the sandbox root when there is one."""
    return '"$ADBD_ROOT"' + shlex.quote(path)


class AdbDevice:
    """Implements harness.devices.base.Device over a Transport."""

    def __init__(self, transport: Transport, workdir: str = WORKDIR):
        self.transport = transport
        self.name = transport.serial
        self._workdir = workdir
        self._props: dict[str, str] | None = None
        self.returncode: int | None = None
        self.stderr = ""  # of the last stream() that ended

    # -- facts --------------------------------------------------------------------

    def props(self) -> dict[str, str]:
        """All properties, from `getprop` (parsed from its `[k]: [v]` lines)."""
        if self._props is None:
            out = self.shell(["getprop"]).stdout
            props = {}
            for line in out.splitlines():
                if line.startswith("[") and "]: [" in line:
                    key, _, value = line[1:].partition("]: [")
                    props[key] = value.rstrip("]")
            self._props = props
        return self._props

    @property
    def device_class(self) -> str:
        props = self.props()
        if props.get("ro.build.version.sdk"):  # an Android build says so, whatever else it says
            return "android"
        return props.get("ro.harness.device_class") or "linux"

    def python(self) -> str:
        return self.props().get("ro.harness.python") or "python3"

    def workdir(self) -> str:
        return self._workdir

    # -- commands -----------------------------------------------------------------

    def shell(self, argv: list[str], timeout: float = TIMEOUT) -> ShellResult:
        return self.transport.shell(quote_argv(argv), timeout)

    def run_in_workdir(self, argv: list[str], timeout: float) -> ShellResult:
        """Run argv with the working directory set to the harness workdir."""
        script = f"mkdir -p {device_path(self._workdir)} && cd {device_path(self._workdir)} && "
        return self.transport.shell(script + quote_argv(argv), timeout)

    def stream(self, argv: list[str], timeout: float) -> Iterator[str]:
        """Run the runner in the workdir and yield its lines as they arrive, so each
        finished cell is stored at once; a silence past `stream_idle_timeout()` (the
        runner heartbeats every second) is a lost link, noticed then, not at `timeout`."""
        script = f"mkdir -p {device_path(self._workdir)} && cd {device_path(self._workdir)} && "
        chunks = self.transport.shell_stream(
            script + quote_argv(argv), timeout, stream_idle_timeout()
        )
        self.returncode, self.stderr = None, ""
        pending = b""
        while True:
            try:
                chunk = next(chunks)
            except StopIteration as done:
                # stderr too: a runner that dies says why there (see python_runner)
                self.returncode, self.stderr = done.value.exit_code, done.value.stderr
                break
            pending += chunk
            if len(pending) > MAX_PENDING_LINE:
                raise DeviceError(f"{self.name}: runner output line over {MAX_PENDING_LINE} bytes")
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace") + "\n"
        if pending:
            yield pending.decode("utf-8", "replace")

    # -- files --------------------------------------------------------------------

    def stage(self, local: Path, sha256: str, suffix: str) -> str:
        """Content-addressed push: blobs/<sha256><suffix>, skipped when already there."""
        rel = f"blobs/{sha256}{suffix}"
        final = f"{self._workdir}/{rel}"
        size = Path(local).stat().st_size
        if self._holds(final, size, sha256):
            return rel
        tmp = f"{final}.part-{sha256[:8]}"
        self.transport.push(Path(local), tmp, timeout=max(TIMEOUT, size / 1e6))
        # The final name appears only by an atomic rename of a complete file.
        check = self.transport.shell(
            f"cd {device_path(self._workdir)} && "
            f'test "$(wc -c < {shlex.quote(rel + ".part-" + sha256[:8])})" -eq {size} && '
            f"mv -f {shlex.quote(rel + '.part-' + sha256[:8])} {shlex.quote(rel)}",
            TIMEOUT,
        )
        if check.exit_code != 0:
            raise DeviceError(f"{self.name}: push of {Path(local).name} did not complete")
        return rel

    def _holds(self, path: str, size: int, sha256: str) -> bool:
        st = self.transport.stat(path, TIMEOUT)
        if not st.exists or st.size != size:
            return False
        out = self.transport.shell(f"sha256sum {device_path(path)}", TIMEOUT)
        return out.exit_code == 0 and out.stdout.split()[:1] == [sha256]

    def write_text(self, path: str, text: str) -> str:
        """Push a small text file (a job) to a workdir-relative path."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        try:
            self.transport.push(Path(f.name), f"{self._workdir}/{path}", TIMEOUT)
        finally:
            Path(f.name).unlink(missing_ok=True)
        return path

    def push(self, local: Path, remote: str, timeout: float = TIMEOUT) -> None:
        """Plain push of a local file to an absolute device path."""
        self.transport.push(Path(local), remote, timeout)

    def pull(self, remote: str, local: Path, limit: int = 1 << 30) -> None:
        """Copy a device file to exactly `local` (never a path the device chose)."""
        Path(local).write_bytes(self.transport.pull(remote, limit, TIMEOUT))

    def stat(self, remote: str) -> RemoteStat:
        """mode/size/mtime of a device path (mode 0: it does not exist)."""
        return self.transport.stat(remote, TIMEOUT)

    def pull_bytes(self, remote: str, limit: int) -> bytes:
        path = remote if remote.startswith("/") else f"{self._workdir}/{remote}"
        return self.transport.pull(path, limit, TIMEOUT)

    def close(self) -> None:
        self.transport.close()
