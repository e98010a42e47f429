"""The host itself as a device: commands run as subprocesses, files stay where they are."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.devices.base import ShellResult
from harness.errors import DeviceError


class LocalDevice:
    """`--device local`: the Python runner runs in a subprocess of this interpreter."""

    name = "local"
    device_class = "linux"

    def __init__(self, workdir: Path | None = None):
        self._owned = workdir is None  # a temp workdir we made is ours to remove
        self._workdir = Path(workdir or tempfile.mkdtemp(prefix="harness-local-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.returncode: int | None = None

    def shell(self, argv: list[str], timeout: float = 60.0) -> ShellResult:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"local command timed out after {timeout:.0f}s: {argv[0]}") from exc
        return ShellResult(p.returncode, p.stdout, p.stderr)

    def stream(self, argv: list[str], timeout: float) -> Iterator[str]:
        """Yield stdout lines; stderr goes to a log file beside the job (runtime chatter)."""
        log = open(self._workdir / "runner.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=self._workdir,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            yield from proc.stdout
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.returncode = proc.returncode
            log.close()

    def stage(self, local: Path, sha256: str, suffix: str) -> str:
        path = Path(local).resolve()
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            # A name that is not UTF-8 cannot travel in the JSON job (the runtime takes
            # only text paths): give the runner a content-addressed link instead.
            link = self._workdir / "blobs" / f"{sha256}{suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(path)
            return str(link)
        return str(path)

    def write_text(self, path: str, text: str) -> str:
        target = self._workdir / path
        target.write_text(text)
        return str(target)

    def pull_bytes(self, remote: str, limit: int) -> bytes:
        path = self._workdir / remote  # an absolute `remote` stays as it is
        if path.stat().st_size > limit:
            raise DeviceError(f"{remote}: larger than the {limit}-byte limit")
        return path.read_bytes()

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def workdir(self) -> str:
        return str(self._workdir)

    def python(self) -> str:
        return sys.executable

    def facts(self) -> dict:
        return {
            "serial": "local",
            "transport": "subprocess",
            "model": platform.node(),
            "abi": platform.machine(),
            "class": "linux",
            "emulator": False,
        }
