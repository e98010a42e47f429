"""One lock per device serial, so two harness processes never time on one device at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import DeviceError


def lock_dir() -> Path:
    """$HARNESS_LOCK_DIR, else a per-user directory under the cache."""
    if env := os.environ.get("HARNESS_LOCK_DIR"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "harness" / "locks"


def lock_path(serial: str) -> Path:
    # A serial like "127.0.0.1:5037" or a hostile string must map to one safe file name.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", serial)[:64]
    digest = hashlib.sha256(serial.encode()).hexdigest()[:8]
    return lock_dir() / f"{safe}-{digest}.lock"


@contextlib.contextmanager
def device_lock(serial: str, wait_s: float = 0.0, poll_s: float = 0.1) -> Iterator[Path]:
    """Hold the device's lock; wait up to `wait_s`, then fail naming the holder."""
    path = lock_path(serial)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise DeviceError(
                        f"device {serial} is busy: harness process {holder} is timing on it "
                        f"(waited {wait_s:.0f}s; pass --lock-wait to wait longer)"
                    ) from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
