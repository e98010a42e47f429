"""The Device interface every transport implements (local host, ADB direct, adb server)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ShellResult:
    """A finished remote command, with its real exit code."""

    exit_code: int
    stdout: str
    stderr: str


class Device(Protocol):
    """What a runner needs from a device. Every argv element is quoted by the transport."""

    name: str
    device_class: str  # "linux" | "android"

    def shell(self, argv: list[str], timeout: float = 60.0) -> ShellResult:
        """Run a command; the exit code is the remote one."""

    def stream(self, argv: list[str], timeout: float) -> Iterator[str]:
        """Run a command and yield its stdout line by line as it is produced."""

    def stage(self, local: Path, sha256: str, suffix: str) -> str:
        """Make a local file available on the device (content-addressed) and return its path."""

    def write_text(self, path: str, text: str) -> str:
        """Write a small file (a job) at a workdir-relative path; return how to name it."""

    def pull_bytes(self, remote: str, limit: int) -> bytes:
        """Read a device file (absolute or workdir-relative), refusing more than `limit`."""

    def workdir(self) -> str:
        """A writable directory on the device; relative paths and the runner's cwd."""

    def python(self) -> str:
        """The Python interpreter to run device_scripts with."""


@dataclass(frozen=True)
class RemoteStat:
    """What a device says about a path: mode 0 means it does not exist."""

    mode: int
    size: int
    mtime: int

    @property
    def exists(self) -> bool:
        return self.mode != 0


class Transport(Protocol):
    """Raw ADB operations on one device. Implementations: adb-shell direct, adb server.

    `shell` takes a complete shell command line that the caller has already quoted
    (see harness.devices.remote.quote_argv); it returns the remote exit code and keeps
    stderr apart. Every method honours its timeout and raises DeviceError on failure.
    """

    serial: str

    def shell(self, command: str, timeout: float) -> ShellResult: ...

    def shell_stream(
        self, command: str, timeout: float, idle: float
    ) -> Generator[bytes, None, ShellResult]:
        """Yield stdout as it arrives; return the exit code and stderr (stdout empty).

        `timeout` bounds the whole command, `idle` each silence (a stalled link is
        noticed in `idle` seconds, not at the end of a long job)."""
        ...

    def push(self, local: Path, remote: str, timeout: float) -> None: ...

    def pull(self, remote: str, limit: int, timeout: float) -> bytes: ...

    def stat(self, remote: str, timeout: float) -> RemoteStat: ...

    def close(self) -> None: ...
