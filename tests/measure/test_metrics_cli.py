"""`harness run --metric` end to end: the real digits CNN, timed and evaluated on this
host through the CLI, metrics stored on each cell; bad inputs one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_user_error, harness

RUN = ("--device", "local", "--delegates", "xnnpack", "--threads", "1", "--runs", "4",
       "--rounds", "2", "--warmup", "1")  # fmt: skip

USER_METRICS = """
__version__ = "2.0"

def confident_share(outputs, labels):
    '''Share of samples whose top probability is above 0.9.'''
    return float((outputs.max(axis=1) > 0.9).mean())

def broken(outputs, labels):
    raise ZeroDivisionError("the team's bug")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "team_metrics.py").write_text(USER_METRICS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def test_chosen_metrics_are_stored_per_cell_primary_first(variants, digits, store_url, user_module):
    model = variants.manifest_path.parent
    proc = harness(
        "run", model, *RUN, "--variants", "fp32,int8", "--eval", digits / "eval.npz",
        "--metric", "topk:k=3", "--metric", "top1", "--metric", "snr",
        "--metric", "team_metrics:confident_share", "--metric", "team_metrics:broken",
        "--store", store_url, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the failing user metric: one line naming it, said once for the run, timings kept
    warned = [ln for ln in proc.stderr.splitlines() if "team_metrics:broken" in ln]
    assert warned == [
        "warning: metric team_metrics:broken failed: ZeroDivisionError: the team's bug "
        "(timing kept)"
    ]
    doc = json.loads(proc.stdout)
    y = np.load(digits / "eval.npz")["y"]
    for cell in doc["cells"]:
        assert cell["status"] == "ok" and cell["latency_us"]["median"] > 0
        by = {m["name"]: m for m in cell["metrics"]}
        assert [m["name"] for m in cell["metrics"]][0] == "topk:k=3"
        assert cell["accuracy"] == by["topk:k=3"]["value"]  # accuracy = the primary
        assert by["topk:k=3"]["value"] >= by["top1"]["value"] > 0.9
        assert by["top1"]["units"] == "fraction" and by["snr"]["units"] == "dB"
        assert by["team_metrics:confident_share"]["version"] == "2.0"
        assert 0 < by["team_metrics:confident_share"]["value"] <= 1
        assert by["team_metrics:broken"]["value"] is None
        assert len(y) > 300
    snr = {c["variant"]: {m["name"]: m for m in c["metrics"]}["snr"]["value"] for c in doc["cells"]}
    assert snr["fp32"] > 100 > snr["int8"] > 10  # int8 is measurably further from fp32


def test_a_regression_metric_on_float_labels(variants, digits, store_url, tmp_path):
    """mae/rmse take numeric labels: here the probability the fp32 model gives class 0."""
    data = np.load(digits / "eval.npz")
    target = np.linspace(0, 1, len(data["y"])).astype(np.float32)  # any numbers will do
    np.savez(tmp_path / "reg.npz", x=data["x"], y=np.stack([target] * 10, axis=1))
    proc = harness(
        "run", variants.manifest_path.parent, *RUN, "--variants", "fp32",
        "--eval", tmp_path / "reg.npz", "--metric", "rmse", "--metric", "mae",
        "--store", store_url, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads(proc.stdout)["cells"]
    rmse, mae = cell["metrics"]
    assert rmse["higher_is_better"] is False and rmse["value"] >= mae["value"] > 0.1


@pytest.mark.parametrize(
    ("metric", "labels", "words"),
    [
        ("top2", "ok", ("unknown metric 'top2'",)),
        ("top1", "none", ("metric top1 needs labels",)),
        ("auc", "ok", ("auc: the output has 10 classes", "auc:class=")),
        ("top1", "float", ("top1 needs integer class labels",)),
        ("top1", "short", ("y must hold one numeric label per sample", "359 ")),
        ("top1", "text", ("y must hold one numeric label per sample",)),
        ("snr:output=boxes", "ok", ("no output 'boxes'",)),
    ],
)
def test_bad_metric_inputs_are_one_line_and_exit_2(
    variants, digits, store_url, tmp_path, metric, labels, words
):
    data = np.load(digits / "eval.npz")
    x, y = data["x"], data["y"]
    ys = {"ok": y, "float": y + 0.5, "short": y[:-1], "text": y.astype(str)}
    path = tmp_path / "eval.npz"
    np.savez(path, x=x) if labels == "none" else np.savez(path, x=x, y=ys[labels])
    proc = harness(
        "run", variants.manifest_path.parent, *RUN, "--variants", "fp32", "--eval", path,
        "--metric", metric, "--store", store_url,
    )  # fmt: skip
    assert_user_error(proc, *words)


def test_a_metric_without_eval_data_is_one_line(variants, store_url):
    proc = harness(
        "run", variants.manifest_path.parent, *RUN, "--metric", "snr", "--store", store_url
    )
    assert_user_error(proc, "metric snr needs eval data: give --eval")
