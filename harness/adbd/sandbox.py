"""Map device paths (``/data/local/tmp/x``) into a host directory, refusing escapes.

Rules, applied to every path the sync service touches:

* a device path is always taken relative to the root (``/etc/passwd`` is
  ``ROOT/etc/passwd``), whether or not it starts with ``/``;
* ``..`` is resolved lexically and may never climb above the root;
* symlinks are resolved with ``realpath`` and the result must stay inside the root.
  Operations that act on a link itself (lstat, unlink, create) resolve only the parent.

Checks and the later open() are separate system calls, so a process on the host that
swaps a directory for a symlink in between could still race them; the sync service
narrows that with ``O_NOFOLLOW`` where it creates files. Shell commands are not
sandboxed at all (they run on the real host); see ``harness/adbd/shell.py``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Where adb tools expect a scratch directory on every device.
DEVICE_TMP = "/data/local/tmp"


class SandboxError(OSError):
    """A device path that would leave the sandbox root."""

    def __init__(self, device_path: str, why: str) -> None:
        super().__init__(errno.EACCES, os.strerror(errno.EACCES))
        self.device_path = device_path
        self.why = why

    def __str__(self) -> str:
        return f"{self.device_path!r} {self.why}"


class Sandbox:
    """A root directory on the host that stands for ``/`` on the device."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.realpath(os.fspath(root))

    def ensure_layout(self) -> None:
        """Create the root and the directories every Android device has."""
        os.makedirs(self.host_path_lexical(DEVICE_TMP), exist_ok=True)

    def contains(self, host_path: str) -> bool:
        """True if ``host_path`` (already resolved) is the root or below it."""
        return host_path == self.root or host_path.startswith(self.root.rstrip("/") + "/")

    def host_path_lexical(self, device_path: str | bytes) -> str:
        """The host path for ``device_path`` with ``.``/``..`` removed; links not followed."""
        text = os.fsdecode(device_path)
        if "\0" in text:
            raise SandboxError(text, "contains a NUL byte")
        parts: list[str] = []
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise SandboxError(text, "climbs above the device root")
                parts.pop()
            else:
                parts.append(part)
        return os.path.join(self.root, *parts)

    def resolve(self, device_path: str | bytes) -> str:
        """Host path with every symlink followed; it must stay inside the root."""
        real = os.path.realpath(self.host_path_lexical(device_path))
        if not self.contains(real):
            raise SandboxError(os.fsdecode(device_path), "resolves outside the device root")
        return real

    def resolve_parent(self, device_path: str | bytes) -> str:
        """Host path with the parent resolved but the last component left as is."""
        lexical = self.host_path_lexical(device_path)
        if lexical == self.root:
            return self.root
        parent, name = os.path.split(lexical)
        real_parent = os.path.realpath(parent)
        if not self.contains(real_parent):
            raise SandboxError(os.fsdecode(device_path), "resolves outside the device root")
        return os.path.join(real_parent, name)

    def check_link_target(self, link_device_path: str | bytes, target: str) -> None:
        """Refuse a symlink whose target is absolute or would point out of the root."""
        if target.startswith("/") or "\0" in target:
            raise SandboxError(target, "absolute symlink targets are not allowed")
        link_dir = os.path.dirname(self.resolve_parent(link_device_path))
        real = os.path.realpath(os.path.join(link_dir, target))
        if not self.contains(real):
            raise SandboxError(target, "symlink would point outside the device root")

    @property
    def path(self) -> Path:
        """The root as a Path."""
        return Path(self.root)
