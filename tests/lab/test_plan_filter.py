"""Per-device plan filtering: what a device cannot run is listed with a reason, not measured."""

from __future__ import annotations

from harness.cells import Cell
from harness.lab.capabilities import NO_ANDROID_RUNNER, device_capabilities, filter_cells
from harness.lab.plan import ModelVariant, expand


class FakeDevice:
    def __init__(self, device_class: str, props: dict | None = None):
        self.device_class, self._props = device_class, props or {}

    def props(self) -> dict:
        return self._props


def _cells(delegates) -> list[Cell]:
    variants = [ModelVariant("m", v, None, None) for v in ("fp32", "int8")]
    return expand("dev", variants, tuple(delegates), (1, 2))


def test_linux_board_drops_nnapi_with_the_reason():
    caps = device_capabilities(FakeDevice("linux"))
    keep, dropped = filter_cells(_cells(["cpu", "xnnpack", "nnapi", "gpu"]), caps)
    assert {c.delegate for c in keep} == {"cpu", "xnnpack", "gpu"}  # gpu: the device decides
    assert len(dropped) == 2 * 2 and {c.delegate for c, _ in dropped} == {"nnapi"}
    assert all("Android delegate" in reason for _, reason in dropped)


def test_a_device_that_declares_its_delegates_gets_only_those():
    caps = device_capabilities(FakeDevice("linux", {"ro.harness.delegates": "cpu,gpu"}))
    keep, dropped = filter_cells(_cells(["cpu", "xnnpack", "gpu"]), caps)
    assert {c.delegate for c in keep} == {"cpu", "gpu"}
    assert {c.delegate for c, _ in dropped} == {"xnnpack"}
    assert "not offered by this device (it offers cpu, gpu)" in dropped[0][1]


def test_android_devices_are_filtered_whole_without_benchmark_model(monkeypatch):
    from harness.lab import capabilities

    monkeypatch.setattr(capabilities, "android_runner_available", lambda: True)
    caps = device_capabilities(FakeDevice("android"))
    keep, _ = filter_cells(_cells(["cpu", "nnapi", "npu"]), caps)
    assert {c.delegate for c in keep} == {"cpu", "nnapi", "npu"}  # npu: LiteRT's runner
    monkeypatch.setattr(capabilities, "android_runner_available", lambda: False)
    caps = device_capabilities(FakeDevice("android"))
    keep, dropped = filter_cells(_cells(["cpu", "nnapi"]), caps)
    assert keep == [] and len(dropped) == 8
    assert {reason for _, reason in dropped} == {NO_ANDROID_RUNNER}


def test_the_host_has_no_props_and_is_linux():
    from harness.devices.local import LocalDevice

    caps = device_capabilities(LocalDevice())
    assert caps.device_class == "linux" and caps.why_not("xnnpack") is None
