"""Quantisation recipes (int16x8, w8, w4 beside fp16/dynamic/int8), the AI Edge
Quantizer on a .tflite source, ONNX sources through onnx2tf, unsupported variants as
manifest entries and run rows, and the conversion worker process.

Every conversion here is real: the digits CNN (tests/conftest.py), its fp32 .tflite,
and an ONNX file built in the test from the same trained weights with onnx's helper API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, harness

from harness.convert.pipeline import ConvertSpec, convert_model, load_manifest

ALL = ("fp32", "fp16", "dynamic", "int8", "int16x8", "w8", "w4")


def _entries(out: Path) -> dict:
    return {v["name"]: v for v in load_manifest(out)["variants"]}


def _run_json(model_dir: Path, eval_npz: Path, store: str) -> dict:
    """`harness run` on the host, one delegate, few runs: every variant's accuracy and
    drift against fp32, measured by the real runner."""
    proc = harness(
        "run", model_dir, "--device", "local", "--delegates", "xnnpack", "--runs", "4",
        "--rounds", "2", "--warmup", "1", "--eval", eval_npz, "--store", store, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {c["variant"]: c for c in json.loads(proc.stdout)["cells"]}


# ----------------------------------------------------------------------------- .tflite source


@pytest.fixture(scope="module")
def quantised(variants, digits, tmp_path_factory) -> Path:
    """The repository's digits fp32 .tflite quantised by the quantizer into every recipe."""
    out = tmp_path_factory.mktemp("quantised")
    src = variants.manifest_path.parent / "fp32.tflite"
    convert_model(ConvertSpec(src, out, ALL, digits / "calibration.npz"))
    return out


def test_tflite_source_quantised_into_every_recipe(quantised, variants):
    entries = _entries(quantised)
    assert list(entries) == list(ALL)
    assert all(e["status"] == "ok" for e in entries.values())
    fp32 = entries["fp32"]
    assert fp32["recipe"]["tool"] == "as-is"
    assert fp32["sha256"] == variants.variants[0].info.sha256  # the source, untouched
    for name in ALL[1:]:
        e = entries[name]
        assert e["recipe"]["tool"] == "litert-quantizer"
        assert e["recipe"]["version"] == e["converter"]["litert-quantizer"]
        assert e["recipe"]["calibrated"] == (name in ("int8", "int16x8"))
        assert e["size_bytes"] < fp32["size_bytes"]  # each recipe narrowed the weights
    # the dtypes say which recipe is which, not only the names
    assert entries["int8"]["inputs"][0]["dtype"] == "int8"
    assert entries["int16x8"]["inputs"][0]["dtype"] == "int16"
    assert entries["w8"]["inputs"][0]["dtype"] == "float32"
    assert entries["w4"]["size_bytes"] < entries["w8"]["size_bytes"]
    assert "DEQUANTIZE" in {op["name"] for op in entries["w4"]["ops"]}  # weight-only


def test_every_recipe_runs_on_the_host_with_plausible_drift(quantised, digits, store_url):
    cells = _run_json(quantised, digits / "eval.npz", store_url)
    assert set(cells) == set(ALL)
    for name, c in cells.items():
        assert c["status"] == "ok", (name, c["reason"])
        assert c["accuracy"] > 0.9, (name, c["accuracy"])
    drift = {name: c["drift"]["mean_abs"] for name, c in cells.items()}
    assert drift["fp32"] < 1e-6  # xnnpack against the plain-CPU reference
    # 16-bit activations lose less than 8-bit ones on the same model and data
    assert drift["int16x8"] < drift["int8"], drift
    assert drift["fp16"] < drift["w8"] < drift["w4"], drift


def test_keras_source_gets_the_new_recipes(digits, tmp_path):
    out = tmp_path / "out"
    convert_model(
        ConvertSpec(
            digits / "digits.keras", out, ("int16x8", "w8", "w4"), digits / "calibration.npz"
        )
    )
    entries = _entries(out)
    # int16x8 is a TFLiteConverter recipe; weight-only ones are the quantizer's on its fp32
    assert entries["int16x8"]["recipe"]["tool"] == "tflite-converter"
    assert "INT16" in entries["int16x8"]["recipe"]["detail"]
    assert entries["int16x8"]["converter"]["tensorflow"]
    assert {op["name"] for op in entries["int16x8"]["ops"]} >= {"CONV_2D", "FULLY_CONNECTED"}
    for name in ("w8", "w4"):
        assert entries[name]["recipe"]["tool"] == "litert-quantizer"


def test_a_recipe_the_model_cannot_take_is_an_unsupported_entry_and_row(tmp_path, store_url):
    """A model without weights (one tanh): weight-only and dynamic recipes have nothing
    to quantise. The manifest says so with the tool's reason, and `harness run` shows
    the rows as unsupported, timing the rest."""
    code = (
        "import keras, sys;"
        "m = keras.Sequential([keras.Input((4,), name='x'), keras.layers.Activation('tanh')]);"
        "m.save(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, tmp_path / "act.keras"], check=True)
    out = tmp_path / "out"
    proc = harness("convert", tmp_path / "act.keras", "-o", out, "--variants", "fp32,w8,dynamic")
    assert proc.returncode == 0, proc.stderr
    assert "w8: unsupported: litert-quantizer left every tensor float32" in proc.stderr
    entries = _entries(out)
    assert entries["fp32"]["status"] == "ok"
    for name in ("w8", "dynamic"):
        assert entries[name]["status"] == "unsupported"
        assert entries[name]["file"] is None and "no op of this model" in entries[name]["reason"]
    assert sorted(p.name for p in out.iterdir()) == ["fp32.tflite", "manifest.json"]
    np.savez(tmp_path / "eval.npz", x=np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4))
    cells = _run_json(out, tmp_path / "eval.npz", store_url)
    assert cells["fp32"]["status"] == "ok"
    assert cells["w8"]["status"] == "unsupported"
    assert "litert-quantizer left every tensor float32" in cells["w8"]["reason"]
    assert cells["dynamic"]["status"] == "unsupported"
    # the verdict is cached too: converting again does no work at all
    again = harness("convert", tmp_path / "act.keras", "-o", out, "--variants", "fp32,w8,dynamic")
    assert again.returncode == 0 and "converting" not in again.stderr


# ----------------------------------------------------------------------------- worker process


def test_the_cli_process_never_imports_a_converter(variants, tmp_path):
    """A cold conversion runs in the worker: the calling process imports neither
    TensorFlow nor the quantizer, and prints one progress line per variant."""
    src = variants.manifest_path.parent / "fp32.tflite"
    code = f"""
import sys
from pathlib import Path
from harness.convert.pipeline import ConvertSpec, convert_model
lines = []
r = convert_model(ConvertSpec(Path({str(src)!r}), Path({str(tmp_path / "o")!r}), ("w8", "w4")),
                  progress=lines.append)
heavy = [m for m in ("tensorflow", "keras", "litert_quantizer", "onnx2tf") if m in sys.modules]
print(r.all_cached, heavy, lines)
"""
    env = os.environ | {"HARNESS_CACHE_DIR": str(tmp_path / "cold-cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    cached, heavy, lines = proc.stdout.split(" ", 2)
    assert cached == "False" and heavy == "[]"
    for name in ("w8", "w4"):
        assert f"'{name}: converting'" in lines and f"'{name}: done in " in lines


# ----------------------------------------------------------------------------- ONNX source


def _digits_onnx(keras_file: Path, path: Path, op: str = "Relu") -> Path:
    """The trained digits CNN as a real ONNX graph (NHWC input like a tf2onnx export,
    transposed to NCHW inside), its weights taken from the Keras model."""
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = keras.models.load_model(keras_file, compile=False)
    (k1, b1), (k2, b2) = [layer.get_weights() for layer in model.layers[:2]]
    (w3, b3), (w4, b4) = [layer.get_weights() for layer in model.layers[-2:]]
    arrays = {
        "k1": k1.transpose(3, 2, 0, 1),  # Keras HWIO -> ONNX OIHW
        "b1": b1,
        "k2": k2.transpose(3, 2, 0, 1),
        "b2": b2,
        "w3": w3,
        "b3": b3,
        "w4": w4,
        "b4": b4,
    }
    init = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    node = helper.make_node
    nodes = [
        node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        node("Conv", ["nchw", "k1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        # Relu, or an op given to test the converter's refusal (CastLike(c1, c1): c1)
        node(op, ["c1"] if op == "Relu" else ["c1", "c1"], ["r1"], name="first_activation"),
        node("Conv", ["r1", "k2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Transpose", ["p"], ["nhwc"], perm=[0, 2, 3, 1]),  # Keras' flatten order
        node("Flatten", ["nhwc"], ["f"]),
        node("Gemm", ["f", "w3", "b3"], ["d1"]),
        node("Relu", ["d1"], ["r3"]),
        node("Gemm", ["r3", "w4", "b4"], ["d2"]),
        node("Softmax", ["d2"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        init,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, path)
    return path


@pytest.fixture(scope="module")
def onnx_model(digits, tmp_path_factory) -> Path:
    return _digits_onnx(digits / "digits.keras", tmp_path_factory.mktemp("onnx") / "digits.onnx")


def test_onnx_source_converts_to_every_variant(onnx_model, digits, tmp_path, store_url):
    import onnxruntime

    out = tmp_path / "out"
    argv = (
        "convert", onnx_model, "-o", out, "--variants", "fp32,dynamic,int8,int16x8,w8",
        "--calibration", digits / "calibration.npz",
    )  # fmt: skip
    before = onnx_model.read_bytes()
    proc = harness(*argv)
    assert proc.returncode == 0, proc.stderr
    # onnx2tf rewrites its input file: it must get a copy, so the cache key holds
    assert onnx_model.read_bytes() == before
    again = harness(*argv)
    assert again.returncode == 0 and "converting" not in again.stderr, again.stderr
    doc = load_manifest(out)
    assert doc["source"]["kind"] == "onnx"
    entries = {v["name"]: v for v in doc["variants"]}
    for e in entries.values():
        assert e["status"] == "ok"
        assert e["converter"]["onnx_converter"] == "onnx2tf"
        assert e["converter"]["onnx2tf"] and e["converter"]["onnx"]
    # the ONNX input layout is kept: data that fits the .onnx fits every variant
    assert entries["fp32"]["inputs"][0]["shape_signature"] == [-1, 8, 8, 1]
    with np.load(digits / "eval.npz") as npz:
        x, y = npz["x"].astype(np.float32), npz["y"]
    expected = onnxruntime.InferenceSession(str(onnx_model)).run(None, {"image": x})[0]
    cells = _run_json(out, digits / "eval.npz", store_url)
    assert all(c["status"] == "ok" for c in cells.values()), cells
    assert cells["fp32"]["accuracy"] == pytest.approx(float((expected.argmax(1) == y).mean()))
    assert cells["int16x8"]["drift"]["mean_abs"] < cells["int8"]["drift"]["mean_abs"]
    assert cells["w8"]["accuracy"] > 0.9


# ----------------------------------------------------------------------------- bad input


def test_bad_onnx_and_recipe_inputs_are_one_line_and_exit_2(onnx_model, digits, variants, tmp_path):
    (tmp_path / "truncated.onnx").write_bytes(onnx_model.read_bytes()[:2000])
    # CastLike is standard ONNX (opset 15) that onnx2tf 1.28 has no converter for
    rejected = _digits_onnx(digits / "digits.keras", tmp_path / "castlike.onnx", op="CastLike")
    fp32 = variants.manifest_path.parent / "fp32.tflite"
    cases = [
        (
            [tmp_path / "truncated.onnx", "--variants", "fp32"],
            ["truncated.onnx", "not a valid ONNX"],
        ),
        (
            [rejected, "--variants", "fp32"],
            ["onnx2tf", "cannot convert ONNX op CastLike", "first_activation"],
        ),
        ([fp32, "--variants", "fp32,w2"], ["unknown variant w2", "int16x8, w8, w4"]),
        ([fp32, "--variants", "int8"], ["int8", "--calibration"]),
        ([onnx_model, "--variants", "int16x8"], ["int16x8", "--calibration"]),
    ]
    for i, (argv, words) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert_user_error(harness("convert", *argv, "-o", out), *words)
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
