"""The demo's model shows a trade-off: int8 (int8 I/O) is faster on xnnpack and loses
ROC AUC against fp32, measured through the CLI as `make demo` does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import harness

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))


@pytest.mark.slow
def test_the_demo_variants_differ_in_latency_and_auc(tmp_path, store_url):
    import breast_cancer

    breast_cancer.train(tmp_path / "model")
    conv = harness(
        "convert", tmp_path / "model" / "breast_cancer.keras", "-o", tmp_path / "v",
        "--variants", "fp32,int8", "--calibration", tmp_path / "model" / "calibration.npz",
        "--int8-io",
    )  # fmt: skip
    assert conv.returncode == 0, conv.stderr
    proc = harness(
        "run", tmp_path / "v", "--device", "local", "--delegates", "xnnpack", "--runs", "60",
        "--eval", tmp_path / "model" / "eval.npz", "--metric", "auc", "--metric", "snr",
        "--store", store_url, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = {c["variant"]: c for c in json.loads(proc.stdout)["cells"]}
    fp32, int8 = cells["fp32"], cells["int8"]
    assert fp32["metrics"][0]["name"] == "auc" and fp32["accuracy"] > 0.98
    assert int8["accuracy"] < fp32["accuracy"] - 0.005  # quality measurably lost
    assert int8["latency_us"]["median"] < fp32["latency_us"]["median"]  # and time won
