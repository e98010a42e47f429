"""A Linux board's Python runtime: what `runner.py --preflight` finds there.

The Python runner needs numpy and a TFLite runtime in the interpreter the board names
(`ro.harness.python`). Where one is missing every cell would fail alike, each with the
same crash, so a run checks once, before any cell, in one shell call, and a board that
cannot run the runner is one device-level error (exit 3) that says what to install.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field

from device_scripts.runner import stderr_tail
from harness.errors import DeviceError

PREFLIGHT_ATTEMPTS = 3  # as many tries as python_runner gives a runner (MAX_RESTARTS + 1)
PREFLIGHT_TIMEOUT_S = 120.0  # importing tensorflow.lite on a slow board takes a while
INSTALL_NAMES = {"numpy": "numpy", "runtime": "ai-edge-litert"}
TRIED = "ai_edge_litert, tflite_runtime or tensorflow.lite"


class RuntimeMissing(DeviceError):
    """The board's Python lacks what the runner needs; nothing can be measured there."""


@dataclass(frozen=True)
class BoardRuntime:
    """The interpreter a board runs the runner with, and what it has."""

    python: str
    python_version: str | None = None
    python_ok: bool = False
    min_python: str = "3.8"
    numpy: str | None = None
    runtime: str | None = None  # "ai-edge-litert" | "tflite_runtime" | "tensorflow.lite"
    runtime_version: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # piece -> its import error
    problem: str | None = None  # the preflight itself did not run (no such python, …)

    @property
    def missing(self) -> tuple[str, ...]:
        """What the runner lacks, in words: () when the board can run it."""
        if self.problem or not self.python_ok:
            return (f"Python >= {self.min_python}",)
        return tuple(
            words
            for key, words in (("numpy", "numpy"), ("runtime", f"a TFLite runtime ({TRIED})"))
            if getattr(self, key) is None
        )

    @property
    def ready(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        """`ai-edge-litert 2.3.0`, or what is missing (for `harness devices`)."""
        if self.ready:
            return f"{self.runtime} {self.runtime_version or '?'}"
        return "missing: " + ", ".join(
            "TFLite runtime" if m.startswith("a TFLite") else m for m in self.missing
        )

    def to_dict(self) -> dict:
        return asdict(self) | {"ready": self.ready, "missing": list(self.missing)}

    @classmethod
    def from_preflight(cls, python: str, doc: dict) -> BoardRuntime:
        """From the runner's preflight line (device output: only the known fields)."""

        def text(key: str) -> str | None:
            value = doc.get(key)
            return str(value)[:100] if value is not None else None

        errors = doc.get("errors") if isinstance(doc.get("errors"), dict) else {}
        return cls(
            python=str(doc.get("python") or python)[:300],
            python_version=text("python_version"),
            python_ok=doc.get("python_ok") is True,
            min_python=text("min_python") or "3.8",
            numpy=text("numpy"),
            runtime=text("runtime"),
            runtime_version=text("runtime_version"),
            errors={str(k): stderr_tail(str(v), 3, 300) for k, v in errors.items()},
        )


def probe_runtime(device) -> BoardRuntime:
    """Run `runner.py --preflight` with the device's Python: one staged file (the runner,
    which the run pushes anyway) and one shell call."""
    from harness.convert.sources import file_sha256
    from harness.runners.python_runner import RUNNER_PATH

    python = device.python()
    runner = device.stage(RUNNER_PATH, file_sha256(RUNNER_PATH), ".py")
    # AdbDevice stages relative to its workdir; LocalDevice gives an absolute path
    run = getattr(device, "run_in_workdir", None) or device.shell
    result = run([python, runner, "--preflight"], timeout=PREFLIGHT_TIMEOUT_S)
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("type") == "preflight":
                return BoardRuntime.from_preflight(python, doc)
    said = stderr_tail(result.stderr or result.stdout) or "no output"
    return BoardRuntime(python, problem=f"exit {result.exit_code}: {said}")


def missing_message(name: str, rt: BoardRuntime) -> str:
    """One line: what the board lacks and how to install it there."""
    py = shlex.quote(rt.python)
    if rt.problem:
        return (
            f"{name}: the board's Python {rt.python} cannot run the runner ({rt.problem}); "
            f"it needs Python >= {rt.min_python}: point `harness serve-device --python PATH` "
            "at one"
        )
    if not rt.python_ok:
        return (
            f"{name}: the board's Python {rt.python} is {rt.python_version}; the runner "
            f"needs Python >= {rt.min_python}: point `harness serve-device --python PATH` at one"
        )
    lacking = [key for key in ("numpy", "runtime") if getattr(rt, key) is None]
    broken = [
        f"{key}: {rt.errors[key]}"
        for key in lacking
        if key in rt.errors and "No module named" not in rt.errors[key]
    ]
    why = f" ({'; '.join(broken)})" if broken else ""
    install = " ".join(sorted({INSTALL_NAMES[key] for key in lacking}))
    return (
        f"{name}: the board's Python {rt.python} ({rt.python_version}) lacks "
        f"{' and '.join(rt.missing)}{why}; install on the board with "
        f"`{py} -m pip install {install}`, or start `harness serve-device --python PATH` "
        "with an interpreter that has them"
    )


def needs_preflight(device) -> bool:
    """Linux boards reached over ADB (they name their Python in their props): not
    Android (benchmark_model, no Python), not `local`, whose interpreter is harness's
    own and has its dependencies (numpy, ai-edge-litert) installed with it."""
    linux = getattr(device, "device_class", "linux") == "linux"
    return linux and hasattr(device, "props") and device.name != "local"


def require_runtime(device) -> BoardRuntime | None:
    """The preflight of a run: RuntimeMissing (exit 3, one line) when the board cannot
    run the runner; None for devices that need no check."""
    if not needs_preflight(device):
        return None
    for attempt in range(PREFLIGHT_ATTEMPTS):
        try:
            rt = probe_runtime(device)
            break
        except DeviceError:  # a dropped link: the runner's own restarts forgive it too
            if attempt == PREFLIGHT_ATTEMPTS - 1:
                raise
    if not rt.ready:
        raise RuntimeMissing(missing_message(device.name, rt))
    return rt
