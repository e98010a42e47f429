"""GPU cells: the timed window must end at a synchronisation point, and no GPU means
an `unsupported` row with the runtime's own reason (this machine has no GPU)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from device_scripts import runner

runner.load_runtime()  # as the worker does before it times anything (numpy comes with it)


class EarlyReturnEngine:
    """Behaves like LiteRT's GPU path: run() returns at once, the work finishes on read."""

    def __init__(self, sync_point: str, work_s: float = 0.002):
        self.sync_point = sync_point
        self.work_s = work_s
        self.inputs = [{"shape": (1, 4), "dtype": np.float32, "quantization": (0.0, 0)}]
        self.outputs = [{"shape": (1, 2), "dtype": np.float32, "quantization": (0.0, 0)}]

    def set_inputs(self, arrays):
        pass

    def invoke(self):
        pass  # queued, not done

    def read_outputs(self):
        time.sleep(self.work_s)  # waits for the device, as a buffer read does
        return [np.zeros((1, 2), np.float32)]


def test_accelerator_timing_includes_the_wait_for_results():
    samples = runner.time_cell(EarlyReturnEngine("read_outputs"), {"runs": 5, "warmup": 1}, None)
    # Every timed sample covers the 2 ms the "GPU" needed, not just the enqueue.
    assert min(samples["invoke_us"]) >= 2000
    assert min(samples["warmup_us"]) >= 2000 and samples["first_us"] >= 2000


def test_cpu_timing_is_invoke_only_and_end_to_end_adds_the_copies():
    samples = runner.time_cell(EarlyReturnEngine("invoke"), {"runs": 5, "warmup": 0}, None)
    assert max(samples["invoke_us"]) < 2000  # the read is not part of invoke()
    assert min(samples["e2e_us"]) >= 2000  # ...but it is part of end-to-end


@pytest.mark.parametrize("delegate", ["gpu", "gpu-f32"])
def test_no_gpu_adapter_is_unsupported_with_the_runtime_reason(variants, delegate):
    v = next(v for v in variants.variants if v.name == "fp16")
    model = str(variants.manifest_path.parent / v.file)
    cell = {"id": "g", "model": model, "delegate": delegate, "threads": 1}
    doc = runner.run_cell(runner.load_runtime(), {"runs": 3}, cell, None)
    assert doc["status"] == "unsupported"
    assert "\n" not in doc["reason"] and len(doc["reason"]) <= 240
    assert "adapter" in doc["reason"].lower() or "gpu" in doc["reason"].lower()
    assert "invoke_us" not in doc  # no number for a cell that did not run


def test_short_reason_picks_the_specific_line():
    log = (
        "INFO: [environment.cc:36] Creating LiteRT environment\n"
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU environment: "
        "INTERNAL: No adapters found\nE0000 other noise\n"
    )
    assert runner.short_reason(log) == (
        "Failed to initialize WebGPU environment: INTERNAL: No adapters found"
    )


def test_npu_without_a_vendor_library_says_what_to_configure(variants, monkeypatch):
    monkeypatch.delenv("HARNESS_NPU_DISPATCH_LIBRARY", raising=False)
    v = next(v for v in variants.variants if v.name == "fp32")
    cell = {
        "id": "n",
        "model": str(variants.manifest_path.parent / v.file),
        "delegate": "npu",
        "threads": 1,
    }
    doc = runner.run_cell(runner.load_runtime(), {"runs": 3}, cell, None)
    assert doc["status"] == "unsupported"
    assert "HARNESS_NPU_DISPATCH_LIBRARY" in doc["reason"]


def test_tree_prefixes_are_trimmed_from_reasons():
    assert runner.short_reason("INFO: x\n└ Some ops are not accelerated. Add CPU") == (
        "Some ops are not accelerated. Add CPU"
    )
