"""`harness tools`: device-side binaries per tool kind and ABI in a per-user cache.

Kinds (`--tool`):
    tflite      TFLite's benchmark_model (Interpreter API; tflite/tools/benchmark/)
    litert      LiteRT's CompiledModel benchmark (litert/tools/benchmark_litert_model.cc),
                the binary Google's litert-cli pushes to phones for gpu/npu
    litert-npu  a vendor library the litert binary loads for `npu` cells (the dispatch
                library libLiteRtDispatch_<Vendor>.so, a compiler plugin, QNN/NeuroPilot
                runtime libraries), kept under its own file name

Layout: <cache>/tools/<dir>/<abi>/<name>, plus <cache>/tools/index.json recording each
file's kind, sha256, size, source and when it was added, keyed "<kind>/<abi>[/<name>]"
so the kinds never overwrite each other (an index written before kinds existed keys
tflite binaries by bare ABI; those are read as tflite). A download goes to
a temporary file first and replaces the cached binary only once it is complete (its
Content-Length, when sent, matched) and its checksum is the expected one (when given):
a truncated download or a checksum mismatch leaves the cache exactly as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.metadata
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
# Android ABI -> the nightly binary TF's performance/measurement.md lists. There is no
# Android x86_64 build: the linux_x86-64 one is a glibc binary built without
# __ANDROID__ (no GPU or NNAPI delegate in it), so x86_64 has no official download.
OFFICIAL_NAMES = {
    "arm64-v8a": "android_aarch64_benchmark_model",
    "armeabi-v7a": "android_arm_benchmark_model",
}
ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64")  # what `tools add` accepts
# LiteRT's binaries bucket, per ai-edge-litert version: litert-cli's
# litert_cli/core/constants.py (LITERT_BINARIES_BASE_URL[_ANDROID]) and
# core/android_utils.py (find_android_binary("benchmark_model", abi), arm64 only).
LITERT_BUCKET = "https://storage.googleapis.com/litert/binaries/"
LITERT_OFFICIAL_ABIS = {"arm64-v8a": "android_arm64"}
TOOLS = ("tflite", "litert", "litert-npu")
TOOL_DIRS = {"tflite": "benchmark_model", "litert": "litert_benchmark", "litert-npu": "litert_npu"}
TOOL_NAMES = {
    "tflite": "benchmark_model",
    "litert": "LiteRT's CompiledModel benchmark_model",
    "litert-npu": "LiteRT NPU vendor library",
}
BINARY_NAME = "benchmark_model"
CHUNK = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ToolBinary:
    """One cached file: a binary (tflite, litert) or an NPU vendor library."""

    abi: str
    path: Path
    sha256: str
    size: int
    source: str
    added_at: float
    tool: str = "tflite"  # entries written before kinds existed are tflite

    def to_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path)}

    @classmethod
    def from_dict(cls, d: dict) -> ToolBinary:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**({k: v for k, v in d.items() if k in known} | {"path": Path(d["path"])}))

    @property
    def key(self) -> str:
        """Its index key: kinds and libraries never share one."""
        return _key(self.tool, self.abi, self.path.name if self.tool == "litert-npu" else None)


def tools_dir() -> Path:
    """$HARNESS_CACHE_DIR/tools, else $XDG_CACHE_HOME/harness/tools (~/.cache by default)."""
    if env := os.environ.get("HARNESS_CACHE_DIR"):
        return Path(env) / "tools"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "harness" / "tools"


def litert_version() -> str:
    """The bucket folder litert-cli uses: the installed ai-edge-litert's version, else
    "latest" (litert_cli/core/constants.py)."""
    try:
        return importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        return "latest"


def official_url(abi: str, tool: str = "tflite") -> str:
    """The official download for (tool, abi), or a HarnessError saying there is none."""
    check_tool(tool)
    check_abi(abi)
    if tool == "tflite":
        if abi not in OFFICIAL_NAMES:
            raise HarnessError(no_official_message(abi, tool))
        return NIGHTLY + OFFICIAL_NAMES[abi]
    if tool == "litert" and abi in LITERT_OFFICIAL_ABIS:
        return f"{LITERT_BUCKET}{litert_version()}/{LITERT_OFFICIAL_ABIS[abi]}/{BINARY_NAME}"
    raise HarnessError(no_official_message(abi, tool))


def no_official_message(abi: str, tool: str) -> str:
    if tool == "litert-npu":
        return (
            "NPU vendor libraries have no download here (they come with the vendor's SDK); "
            f"register each with `harness tools add PATH --tool litert-npu --abi {abi}`"
        )
    if tool == "tflite" and abi == "x86_64":
        return (
            "there is no official Android x86_64 benchmark_model (TF's measurement.md lists "
            "android_aarch64 and android_arm; its linux_x86-64 build has no GPU or NNAPI): "
            "build an android_x86_64 benchmark_model and run "
            "`harness tools add PATH --abi x86_64`, or pass --url"
        )
    return (
        f"there is no official {TOOL_NAMES[tool]} download for {abi} (only "
        f"{', '.join(LITERT_OFFICIAL_ABIS if tool == 'litert' else OFFICIAL_NAMES)}): "
        f"run `harness tools add PATH --tool {tool} --abi {abi}`, or pass --url"
    )


def check_abi(abi: str) -> str:
    if abi not in ABIS:
        raise HarnessError(f"unknown ABI {abi!r}; choose from {', '.join(ABIS)}")
    return abi


def check_tool(tool: str) -> str:
    if tool not in TOOLS:
        raise HarnessError(f"unknown tool kind {tool!r}; choose from {', '.join(TOOLS)}")
    return tool


def list_binaries(tool: str | None = None) -> list[ToolBinary]:
    """Every cached file (of one kind when `tool` is given), by kind, ABI and name."""
    found = [ToolBinary.from_dict(d) for _, d in sorted(_read_index().items())]
    return [b for b in found if tool is None or b.tool == tool]


def binary_for_abi(abi: str, tool: str = "tflite") -> ToolBinary:
    """The cached binary of kind `tool` for `abi`, checked against its size and sha256."""
    check_tool(tool)
    index = _read_index()
    entry = index.get(_key(tool, abi))
    if entry is None and tool == "tflite":
        entry = index.get(abi)  # an index from before kinds existed
    if entry is None:
        raise HarnessError(missing_message(abi, tool=tool))
    binary = ToolBinary.from_dict(entry)
    if not _intact(binary):
        raise HarnessError(
            f"the cached {TOOL_NAMES[tool]} for {abi} ({binary.path}) is missing or changed; "
            + missing_message(abi, lead="", tool=tool)
        )
    return binary


def npu_libraries(abi: str) -> list[ToolBinary]:
    """The NPU vendor libraries registered for `abi`, each checked like a binary."""
    libs = [b for b in list_binaries("litert-npu") if b.abi == abi]
    for lib in libs:
        if not _intact(lib):
            raise HarnessError(
                f"the cached NPU library {lib.path.name} for {abi} ({lib.path}) is missing or "
                f"changed; register it again with `harness tools add PATH --tool litert-npu "
                f"--abi {abi}`"
            )
    return libs


def missing_message(
    abi: str,
    lead: str = "no {name} for ABI {abi} in the cache; ",
    tool: str = "tflite",
) -> str:
    lead = lead.format(abi=abi, name=TOOL_NAMES[tool])
    flag = "" if tool == "tflite" else f" --tool {tool}"
    try:
        official_url(abi, tool)
    except HarnessError:
        return lead + no_official_message(abi, tool)
    return lead + (
        f"run `harness tools fetch{flag} --abi {abi}` (downloads the official build) or "
        f"`harness tools add PATH{flag} --abi {abi}` (a binary you already have)"
    )


@dataclass(frozen=True)
class BinaryChoice:
    """The binary picked for a device, and why: which of its ABIs it was built for."""

    binary: ToolBinary
    device_abi: str  # ro.product.cpu.abi
    native_bridge: bool  # an arm binary on an x86 device, run through the native bridge

    def env(self) -> dict:
        """What the cell's environment records about the choice."""
        return {
            "abi": self.binary.abi,
            "device_abi": self.device_abi,
            "native_bridge": self.native_bridge,
        }


def abi_record(props: dict, binary: ToolBinary | None) -> dict:
    """What a cell's environment records about the ABI: the device's, and whether the
    binary runs through its native bridge (an arm build on an x86 device)."""
    device_abi = (props.get("ro.product.cpu.abi") or "").strip() or None
    bridged = bool(
        binary and device_abi and device_abi.startswith("x86") and not binary.abi.startswith("x86")
    )
    return {"device_abi": device_abi, "native_bridge": bridged}


def choose_for_device(props: dict, tool: str = "tflite") -> BinaryChoice:
    """The cached binary for a device: its primary ABI first, then the others of
    ro.product.cpu.abilist in order. An x86_64 emulator that lists arm64-v8a runs arm
    binaries through its native bridge (Android's libhoudini/libndk_translation), so
    the arm64 build is tried there when no x86_64 one is registered; the choice is
    recorded. With nothing usable: one line saying what to register."""
    abi = (props.get("ro.product.cpu.abi") or "").strip()
    listed = [a.strip() for a in props.get("ro.product.cpu.abilist", "").split(",")]
    candidates = list(dict.fromkeys(a for a in [abi, *listed] if a))
    for candidate in candidates:
        if candidate not in ABIS:
            continue
        try:
            binary = binary_for_abi(candidate, tool)
        except HarnessError:
            continue
        bridged = abi.startswith("x86") and not candidate.startswith("x86")
        return BinaryChoice(binary, abi or candidate, bridged)
    if not abi:
        raise HarnessError(
            f"the device reports no ro.product.cpu.abi: cannot pick a {TOOL_NAMES[tool]}"
        )
    if abi.startswith("x86"):
        flag = "" if tool == "tflite" else f" --tool {tool}"
        arm = [a for a in candidates if a in ("arm64-v8a", "armeabi-v7a")]
        bridge = (
            f" (its abilist also has {', '.join(arm)}: `harness tools fetch{flag} --abi "
            f"{arm[0]}` runs through the native bridge)"
            if arm
            else ""
        )
        raise HarnessError(
            f"no {TOOL_NAMES[tool]} for this {abi} device: build an android_{abi} one and run "
            f"`harness tools add PATH{flag} --abi {abi}`{bridge}"
        )
    raise HarnessError(missing_message(abi, tool=tool))


def fetch(
    abi: str,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = TIMEOUT_S,
    tool: str = "tflite",
) -> ToolBinary:
    """Download the binary of kind `tool` for `abi` (from `url`, else the official
    location: TF's nightly for tflite, LiteRT's bucket for litert)."""
    check_tool(tool)
    check_abi(abi)
    if tool == "litert-npu":  # vendor SDK files: registered with `tools add` only
        raise HarnessError(no_official_message(abi, tool))
    url = url or official_url(abi, tool)
    dest = _binary_path(abi, tool)
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
        return _install(abi, tmp, dest, digest, size, url, tool)
    finally:
        tmp.unlink(missing_ok=True)


def add(path: Path, abi: str, tool: str = "tflite") -> ToolBinary:
    """Register a file the user already has: copied into the cache, hashed. A
    litert-npu library keeps its file name (the runtime finds it by name)."""
    check_tool(tool)
    check_abi(abi)
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file")
    if tool == "litert-npu" and not _safe_name(path.name):
        raise HarnessError(f"{path.name!r}: an NPU library name must be letters, digits, ._+-")
    dest = _binary_path(abi, tool, path.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".add-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
        digest, size = _sha256(tmp), tmp.stat().st_size
        return _install(abi, tmp, dest, digest, size, str(path.resolve()), tool)
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


def _install(
    abi: str, tmp: Path, dest: Path, digest: str, size: int, source: str, tool: str = "tflite"
) -> ToolBinary:
    tmp.chmod(0o755)
    os.replace(tmp, dest)
    binary = ToolBinary(abi, dest, digest, size, source, time.time(), tool)
    index = _read_index()
    if tool == "tflite":
        index.pop(abi, None)  # the pre-kinds key, superseded
    index[binary.key] = binary.to_dict()
    _write_index(index)
    return binary


def _key(tool: str, abi: str, name: str | None = None) -> str:
    return f"{tool}/{abi}" + (f"/{name}" if name else "")


def _intact(binary: ToolBinary) -> bool:
    try:
        return binary.path.stat().st_size == binary.size and _sha256(binary.path) == binary.sha256
    except OSError:
        return False


def _safe_name(name: str) -> bool:
    return bool(name) and name[0] != "." and all(c.isalnum() or c in "._+-" for c in name)


def _binary_path(abi: str, tool: str = "tflite", name: str = BINARY_NAME) -> Path:
    return tools_dir() / TOOL_DIRS[tool] / abi / (name if tool == "litert-npu" else BINARY_NAME)


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
