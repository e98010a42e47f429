"""The Device interface every transport implements (local host, ADB direct, adb server)."""

from __future__ import annotations

from collections.abc import Iterator
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

    def pull_bytes(self, remote: str, limit: int) -> bytes:
        """Read a device file, refusing more than `limit` bytes."""

    def workdir(self) -> str:
        """A writable directory on the device for jobs and results."""

    def python(self) -> str:
        """The Python interpreter to run device_scripts with."""
