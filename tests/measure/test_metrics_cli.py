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


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory, digits):
    """A real two-output model: the digits inputs into a shared layer, then a 10-class
    softmax head and a 1-unit regression head; converted to fp32 by harness."""
    import tensorflow as tf

    out = tmp_path_factory.mktemp("two-heads")
    data = np.load(digits / "eval.npz")
    x = tf.keras.Input(shape=data["x"].shape[1:], name="image")
    h = tf.keras.layers.Dense(16, activation="relu")(tf.keras.layers.Flatten()(x))
    probs = tf.keras.layers.Dense(10, activation="softmax", name="probs")(h)
    value = tf.keras.layers.Dense(1, name="value")(h)
    model = tf.keras.Model(x, [probs, value])
    model.save(out / "heads.keras")
    proc = harness("convert", out / "heads.keras", "-o", out / "variants", "--variants",
                   "fp32", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [variant] = json.loads(proc.stdout)["variants"]
    return out / "variants", [o["name"] for o in variant["outputs"]]


def test_a_metric_reads_the_output_it_names_on_a_two_headed_model(
    two_heads, digits, store_url, tmp_path
):
    """mae:output=<the value head> scores the second output: its value is the MAE of
    that head's outputs (run on the host by LiteRT here) against the labels; a metric
    on the other head in the same run is one line, exit 2."""
    from ai_edge_litert.interpreter import Interpreter

    model_dir, names = two_heads
    assert len(names) == 2
    data = np.load(digits / "eval.npz")
    x = data["x"][:40].astype(np.float32)
    interp = Interpreter(model_path=str(model_dir / "fp32.tflite"))
    interp.allocate_tensors()
    details = {d["name"]: d for d in interp.get_output_details()}
    shapes = {n: tuple(details[n]["shape"]) for n in names}
    value_head = next(n for n in names if shapes[n][-1] == 1)
    probs_head = next(n for n in names if shapes[n][-1] == 10)
    rows = []
    for sample in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], sample[None])
        interp.invoke()
        rows.append(interp.get_tensor(details[value_head]["index"])[0])
    target = np.linspace(-1, 1, len(x)).astype(np.float32)[:, None]
    want = float(np.mean(np.abs(np.asarray(rows) - target)))
    np.savez(tmp_path / "value.npz", x=x, y=target)
    proc = harness(
        "run", model_dir, *RUN, "--eval", tmp_path / "value.npz",
        "--metric", f"mae:output={value_head}", "--store", store_url, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    assert cells and all(c["status"] == "ok" for c in cells)
    for c in cells:
        assert c["metrics"][0]["value"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    # the other head, in a run of its own: softmax rows sum to 1, so their MAE against
    # zeros is 0.1 exactly, whichever of the two outputs the model lists first
    np.savez(tmp_path / "probs.npz", x=x, y=np.zeros((len(x), 10), np.float32))
    probs = harness(
        "run", model_dir, *RUN, "--eval", tmp_path / "probs.npz",
        "--metric", f"mae:output={probs_head}", "--store", store_url, "--json",
    )  # fmt: skip
    assert probs.returncode == 0, probs.stderr
    for c in json.loads(probs.stdout)["cells"]:
        assert c["metrics"][0]["value"] == pytest.approx(0.1, abs=1e-6)
    both = harness(
        "run", model_dir, *RUN, "--eval", tmp_path / "value.npz", "--metric",
        f"mae:output={value_head}", "--metric", f"snr:output={probs_head}",
        "--store", store_url,
    )  # fmt: skip
    assert_user_error(both, "metrics read different outputs", "a run scores one output")
