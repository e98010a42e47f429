"""What a device can run, so the lab plans only cells that can be measured.

Filtered-out cells are not measured and not invented: each is listed in the night's
summary with the reason (a JUnit "skipped" test case). Rules:

* android-class devices (phones, emulators) run TFLite's benchmark_model runner
  (harness.runners.benchmark_model): cpu, xnnpack, gpu, gpu-f32, nnapi; and npu (with
  gpu and gpu-f32) on LiteRT's CompiledModel benchmark when one is registered
  (harness.runners.litert_benchmark), else an `unsupported` row saying so. Where the
  runner is not installed, every cell is filtered out, with that reason.
* linux-class devices (boards, `serve-device`, the host) run the Python runner:
  cpu and xnnpack always; nnapi never (an Android API); gpu, gpu-f32 and npu are
  left to the device, whose runner records `unsupported` with the runtime's own reason
  when no adapter or plugin is there.
* a device may declare what it offers with the property `ro.harness.delegates`
  (comma-separated, e.g. set by `harness serve-device --props`): then only those.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cells import Cell

ANDROID_DELEGATES = ("cpu", "xnnpack", "gpu", "gpu-f32", "nnapi", "npu")
LINUX_DELEGATES = ("cpu", "xnnpack", "gpu", "gpu-f32", "npu")
DELEGATES_PROP = "ro.harness.delegates"
NO_ANDROID_RUNNER = (
    "Android devices need TFLite's benchmark_model runner, which this harness does not have yet"
)


@dataclass(frozen=True)
class Capabilities:
    """The delegates a device offers, and why each other one is not planned."""

    device_class: str
    delegates: tuple[str, ...]
    runnable: bool = True
    reason: str | None = None  # why nothing runs (runnable False)

    def why_not(self, delegate: str) -> str | None:
        """None when `delegate` can be planned, else the reason it is filtered out."""
        if not self.runnable:
            return self.reason
        if delegate in self.delegates:
            return None
        if delegate == "nnapi" and self.device_class != "android":
            return "nnapi is an Android delegate; this is a linux-class device"
        return f"{delegate} is not offered by this device (it offers {', '.join(self.delegates)})"

    def to_dict(self) -> dict:
        return {
            "device_class": self.device_class,
            "delegates": list(self.delegates),
            "runnable": self.runnable,
            "reason": self.reason,
        }


def device_capabilities(device) -> Capabilities:
    """Read the device's class and declared delegates (one getprop over ADB)."""
    device_class = getattr(device, "device_class", "linux")
    props = device.props() if hasattr(device, "props") else {}
    declared = tuple(d.strip() for d in props.get(DELEGATES_PROP, "").split(",") if d.strip())
    if device_class == "android":
        runnable = android_runner_available()
        reason = None if runnable else NO_ANDROID_RUNNER
        return Capabilities("android", declared or ANDROID_DELEGATES, runnable, reason)
    return Capabilities(device_class, declared or LINUX_DELEGATES)


def android_runner_available() -> bool:
    """True when the benchmark_model runner for Android devices is part of this harness."""
    import importlib.util

    try:
        return importlib.util.find_spec("harness.runners.benchmark_model.runner") is not None
    except ImportError:
        return False


def filter_cells(
    cells: list[Cell], caps: Capabilities
) -> tuple[list[Cell], list[tuple[Cell, str]]]:
    """(cells to measure, [(cell, reason)] filtered out), both in plan order."""
    keep, dropped = [], []
    for c in cells:
        reason = caps.why_not(c.delegate)
        if reason is None:
            keep.append(c)
        else:
            dropped.append((c, reason))
    return keep, dropped
