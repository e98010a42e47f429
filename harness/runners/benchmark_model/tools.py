"""`harness tools`: benchmark_model binaries per ABI in a per-user cache.

Layout: <cache>/tools/benchmark_model/<abi>/benchmark_model, plus <cache>/tools/index.json
recording each binary's sha256, size, source and when it was added. A download goes to
a temporary file first and replaces the cached binary only once it is complete (its
Content-Length, when sent, matched) and its checksum is the expected one (when given):
a truncated download or a checksum mismatch leaves the cache exactly as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import HarnessError

NIGHTLY = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/"
    "tools/nightly/latest/"
)
# Android ABI -> the documented nightly binary. x86_64 has only a Linux build listed: it
# runs on Linux boards; on an x86_64 emulator the start check says whether it runs.
OFFICIAL_NAMES = {
    "arm64-v8a": "android_aarch64_benchmark_model",
    "armeabi-v7a": "android_arm_benchmark_model",
    "x86_64": "linux_x86-64_benchmark_model",
}
ABIS = tuple(OFFICIAL_NAMES)
BINARY_NAME = "benchmark_model"
CHUNK = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ToolBinary:
    """One cached binary."""

    abi: str
    path: Path
    sha256: str
    size: int
    source: str
    added_at: float

    def to_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path)}

    @classmethod
    def from_dict(cls, d: dict) -> ToolBinary:
        return cls(**(d | {"path": Path(d["path"])}))


def tools_dir() -> Path:
    """$HARNESS_CACHE_DIR/tools, else $XDG_CACHE_HOME/harness/tools (~/.cache by default)."""
    if env := os.environ.get("HARNESS_CACHE_DIR"):
        return Path(env) / "tools"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "harness" / "tools"


def official_url(abi: str) -> str:
    return NIGHTLY + OFFICIAL_NAMES[check_abi(abi)]


def check_abi(abi: str) -> str:
    if abi not in OFFICIAL_NAMES:
        raise HarnessError(f"unknown ABI {abi!r}; choose from {', '.join(ABIS)}")
    return abi


def list_binaries() -> list[ToolBinary]:
    return [ToolBinary.from_dict(d) for _, d in sorted(_read_index().items())]


def binary_for_abi(abi: str) -> ToolBinary:
    """The cached binary for `abi`, checked against its recorded size and sha256."""
    entry = _read_index().get(abi)
    if entry is None:
        raise HarnessError(missing_message(abi))
    binary = ToolBinary.from_dict(entry)
    try:
        ok = binary.path.stat().st_size == binary.size and _sha256(binary.path) == binary.sha256
    except OSError:
        ok = False
    if not ok:
        raise HarnessError(
            f"the cached benchmark_model for {abi} ({binary.path}) is missing or changed; "
            + missing_message(abi, lead="")
        )
    return binary


def missing_message(abi: str, lead: str = "no benchmark_model for ABI {abi} in the cache; ") -> str:
    return lead.format(abi=abi) + (
        f"run `harness tools fetch --abi {abi}` (downloads the official nightly build) or "
        f"`harness tools add PATH --abi {abi}` (a binary you already have)"
    )


def fetch(
    abi: str,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = TIMEOUT_S,
) -> ToolBinary:
    """Download the binary for `abi` (from `url`, else the official nightly location)."""
    check_abi(abi)
    url = url or official_url(abi)
    dest = _binary_path(abi)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _download(url, out, timeout)
        if sha256 and digest != sha256.lower():
            raise HarnessError(
                f"checksum mismatch for {url}: got sha256 {digest}, expected {sha256.lower()}; "
                "the cache is unchanged"
            )
        return _install(abi, tmp, dest, digest, size, url)
    finally:
        tmp.unlink(missing_ok=True)


def add(path: Path, abi: str) -> ToolBinary:
    """Register a binary the user already has: copied into the cache, hashed."""
    check_abi(abi)
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file")
    dest = _binary_path(abi)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".add-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        return _install(abi, tmp, dest, _sha256(tmp), tmp.stat().st_size, str(path.resolve()))
    finally:
        tmp.unlink(missing_ok=True)


def _download(url: str, out, timeout: float) -> tuple[str, int]:
    if not url.startswith(("https://", "http://")):
        raise HarnessError(f"--url must be http(s): {url}")
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked)
            expected = resp.headers.get("Content-Length")
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except http.client.IncompleteRead as exc:
        raise HarnessError(
            f"truncated download from {url}: {size + len(exc.partial)} bytes, "
            f"{exc.expected} missing; the cache is unchanged"
        ) from None
    except urllib.error.HTTPError as exc:
        raise HarnessError(f"download failed: {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise HarnessError(
            f"download failed: {url}: {reason}; the cache is unchanged "
            "(offline? use `harness tools add PATH --abi ABI`)"
        ) from None
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise HarnessError(
            f"truncated download from {url}: {size} of {expected} bytes; the cache is unchanged"
        )
    if size == 0:
        raise HarnessError(f"empty download from {url}; the cache is unchanged")
    return digest.hexdigest(), size


def _install(abi: str, tmp: Path, dest: Path, digest: str, size: int, source: str) -> ToolBinary:
    tmp.chmod(0o755)
    os.replace(tmp, dest)
    binary = ToolBinary(abi, dest, digest, size, source, time.time())
    index = _read_index()
    index[abi] = binary.to_dict()
    _write_index(index)
    return binary


def _binary_path(abi: str) -> Path:
    return tools_dir() / BINARY_NAME / abi / BINARY_NAME


def _index_path() -> Path:
    return tools_dir() / "index.json"


def _read_index() -> dict:
    try:
        doc = json.loads(_index_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{_index_path()}: unreadable tools index ({exc})") from exc
    return doc if isinstance(doc, dict) else {}


def _write_index(index: dict) -> None:
    path = _index_path()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
