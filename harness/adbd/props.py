"""Device properties: truthful defaults for a Linux board, a ``getprop`` shim, the banner.

Shell commands find ``getprop`` first on PATH (a small sh script written to a private
directory outside the sandbox). ``getprop KEY [DEFAULT]`` prints one value,
no arguments prints ``[k]: [v]`` lines (ADB_SPEC.md §4). A boot delay keeps
``sys.boot_completed`` empty until it has passed, like an emulator still booting.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

BOOT_PROPS = ("sys.boot_completed", "dev.bootcomplete")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-:@]+$")
_BANNER_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ]")

# uname -m → Android ABI names, so device-side tooling can pick binaries per ABI.
_ABI_BY_MACHINE = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64-v8a",
    "arm64": "arm64-v8a",
    "armv8l": "armeabi-v7a",
    "armv7l": "armeabi-v7a",
    "armv7": "armeabi-v7a",
    "armv6l": "armeabi",
    "i386": "x86",
    "i686": "x86",
}


class PropsError(ValueError):
    """A props file or property that cannot be used."""


def abi_for_machine(machine: str) -> str:
    """Android ABI name for a ``uname -m`` value (unknown machines pass through)."""
    return _ABI_BY_MACHINE.get(machine.lower(), machine.lower() or "unknown")


def default_props(python: str | None = None) -> dict[str, str]:
    """What a Linux board truthfully is: its ABI, hostname, kernel, the Python to run
    the runner with; booted.

    The Python is `python` (serve-device --python), else the interpreter this daemon
    runs on: it has harness's own dependencies (numpy, ai-edge-litert), where the
    board's `python3` on PATH often has neither."""
    host = socket.gethostname() or "linux"
    abi = abi_for_machine(platform.machine())
    python = python or sys.executable
    return {
        **({"ro.harness.python": python} if python else {}),
        "ro.product.cpu.abi": abi,
        "ro.product.cpu.abilist": abi,
        "ro.product.model": host,
        "ro.product.name": host,
        "ro.product.device": host,
        "ro.harness.device_class": "linux",
        "ro.harness.machine": platform.machine(),
        "ro.harness.kernel": platform.release(),
        "sys.boot_completed": "1",
        "dev.bootcomplete": "1",
    }


def resolve_python(path: str) -> str:
    """`serve-device --python PATH`: an executable file, or a name on PATH, made absolute
    (never symlink-resolved: a venv's python is a link, and only it sees the venv)."""
    found = shutil.which(path)
    if found is None:
        raise PropsError(f"--python {path}: no such executable")
    return os.path.abspath(found)


def _check_prop(key: str, value: str) -> tuple[str, str]:
    if not _KEY_RE.match(key):
        raise PropsError(f"invalid property name {key!r}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise PropsError(f"property {key!r} has a line break or NUL in its value")
    return key, value


def parse_props_text(text: str) -> dict[str, str]:
    """Parse a JSON object, or ``key=value`` lines (``#`` comments, blank lines ok)."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PropsError(f"props JSON is invalid: {exc}") from exc
        return dict(_check_prop(str(k), str(v)) for k, v in data.items())
    props: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise PropsError(f"line {number}: expected key=value, got {line!r}")
        props.update([_check_prop(key.strip(), value.strip())])
    return props


def load_props_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a props file (see ``parse_props_text``)."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise PropsError(f"cannot read props file {path}: {exc.strerror}") from exc
    return parse_props_text(text)


def banner(props: Mapping[str, str], features: tuple[str, ...]) -> bytes:
    """The device CNXN payload; values lose ``:;=`` because the host splits on them."""

    def clean(key: str) -> str:
        return _BANNER_UNSAFE.sub("_", props.get(key, ""))[:200]

    fields = ";".join(
        f"{key}={clean(key)}"
        for key in ("ro.product.name", "ro.product.model", "ro.product.device")
    )
    return f"device::{fields};features={','.join(features)}".encode("ascii")


_SHIM = """#!/bin/sh
# getprop shim written by `harness serve-device`; properties live in one file.
props={props}
if [ "$#" -eq 0 ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    printf '[%s]: [%s]\\n' "${{line%%=*}}" "${{line#*=}}"
  done < "$props"
  exit 0
fi
while IFS= read -r line || [ -n "$line" ]; do
  if [ "${{line%%=*}}" = "$1" ]; then printf '%s\\n' "${{line#*=}}"; exit 0; fi
done < "$props"
printf '%s\\n' "${{2-}}"
"""


class PropStore:
    """Owns the props file and shim in ``workdir``; flips boot props after a delay."""

    def __init__(self, props: Mapping[str, str], boot_delay_s: float, workdir: Path) -> None:
        self.props = dict(props)
        self.boot_delay_s = boot_delay_s
        self.bin_dir = workdir / "bin"
        self._file = workdir / "props"
        self._timer: threading.Timer | None = None

    def install(self) -> None:
        """Write the props file and the shim; start the boot timer if there is a delay."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        shim = self.bin_dir / "getprop"
        shim.write_text(_SHIM.format(props=shlex.quote(str(self._file))))
        shim.chmod(0o755)
        booting = self.boot_delay_s > 0
        self._write(booting=booting)
        if booting:
            self._timer = threading.Timer(self.boot_delay_s, self._write, kwargs={"booting": False})
            self._timer.daemon = True
            self._timer.start()

    def _write(self, booting: bool) -> None:
        shown = dict(self.props)
        if booting:
            shown.update({key: "" for key in BOOT_PROPS})
        lines = "".join(f"{k}={shown[k]}\n" for k in sorted(shown))
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(lines)
        os.replace(tmp, self._file)  # atomic: a running getprop sees old or new, never half

    def cancel(self) -> None:
        """Stop the boot timer (daemon shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
