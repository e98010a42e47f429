"""`harness convert`: real TensorFlow conversion of the digits model, manifest, cache, errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, harness, run_tflite, with_custom_op

from harness.convert.pipeline import (
    ConvertSpec,
    _cache_key,
    convert_model,
    load_manifest,
    manifest_dict,
)
from harness.convert.recipes import recipe_for
from harness.convert.sources import ModelSource, file_sha256
from harness.convert.tflite_info import TfliteInfo, inspect_tflite
from harness.errors import HarnessError

VARIANTS = ("fp32", "fp16", "dynamic", "int8")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_name(result) -> dict:
    return {v.name: v for v in result.variants}


def _op_names(variant) -> set[str]:
    return {op.name for op in variant.info.ops}


# ----------------------------------------------------------------------------- manifest


def test_all_four_variants_written_with_a_manifest(variants, digits):
    out = variants.manifest_path.parent
    doc = json.loads(variants.manifest_path.read_text())
    assert doc == manifest_dict(variants) == load_manifest(out)
    assert doc["schema"] == 1
    assert doc["source"]["kind"] == "keras"
    assert doc["source"]["sha256"] == _sha(digits / "digits.keras")
    assert doc["options"]["calibration_sha256"] == _sha(digits / "calibration.npz")
    assert [v["name"] for v in doc["variants"]] == list(VARIANTS)

    import keras
    import tensorflow as tf

    for v in doc["variants"]:
        path = out / v["file"]
        assert path.is_file()
        assert v["sha256"] == _sha(path)
        assert v["size_bytes"] == path.stat().st_size
        assert v["converter"]["tensorflow"] == tf.__version__
        assert v["converter"]["keras"] == keras.__version__
        assert v["converter"]["converter"]


def test_variant_io_specs_keep_the_dynamic_batch(variants):
    for v in variants.variants:
        (inp,) = v.info.inputs
        (out,) = v.info.outputs
        assert inp.name and out.name
        assert inp.shape_signature == (-1, 8, 8, 1)
        assert inp.shape == (1, 8, 8, 1)
        assert out.shape_signature == (-1, 10)
        # float I/O unless --int8-io: the int8 variant quantises inside the graph
        assert inp.dtype == out.dtype == "float32"
        assert inp.scale is None and inp.zero_point is None


def test_op_lists_have_versions_and_show_the_recipe(variants):
    by = _by_name(variants)
    for v in variants.variants:
        assert v.info.ops, v.name
        for op in v.info.ops:
            assert op.version >= 1 and op.count >= 1 and not op.custom
        assert v.info.custom_ops == []
        assert "CONV_2D" in _op_names(v) and "FULLY_CONNECTED" in _op_names(v)
    assert "DEQUANTIZE" not in _op_names(by["fp32"])
    assert "DEQUANTIZE" in _op_names(by["fp16"])  # fp16 weights are dequantised at load
    assert {"QUANTIZE", "DEQUANTIZE"} <= _op_names(by["int8"])  # float I/O around int8 core
    # quantised kernels need newer op versions than the float ones
    conv = {v.name: next(op for op in v.info.ops if op.name == "CONV_2D") for v in by.values()}
    assert conv["int8"].version > conv["fp32"].version
    sizes = {name: v.info.size_bytes for name, v in by.items()}
    assert max(sizes["fp16"], sizes["dynamic"], sizes["int8"]) < sizes["fp32"]


def test_int8_io_has_int8_tensors_with_quantisation(int8_io):
    (v,) = int8_io.variants
    assert int8_io.options["int8_io"] is True
    for t in (*v.info.inputs, *v.info.outputs):
        assert t.dtype == "int8"
        assert t.scale is not None and t.scale > 0
        assert -128 <= t.zero_point <= 127
    assert v.info.inputs[0].shape_signature == (-1, 8, 8, 1)


def test_tflite_info_round_trips_through_the_manifest(variants):
    for v in variants.variants:
        assert TfliteInfo.from_dict(v.info.to_dict()) == v.info
        data = (variants.manifest_path.parent / v.file).read_bytes()
        assert inspect_tflite(data) == v.info


def test_converted_fp32_matches_keras(variants, digits):
    import keras

    with np.load(digits / "eval.npz") as npz:
        x = npz["x"][:40]
    want = keras.models.load_model(digits / "digits.keras", compile=False).predict(x, verbose=0)
    got = run_tflite(variants.manifest_path.parent / "fp32.tflite", x)
    np.testing.assert_allclose(got, want, atol=1e-5)


# ----------------------------------------------------------------------------- sources


@pytest.mark.slow
def test_h5_source(digits, variants, tmp_path):
    import keras

    h5 = tmp_path / "digits.h5"
    keras.models.load_model(digits / "digits.keras", compile=False).save(h5)
    proc = harness("convert", h5, "-o", tmp_path / "out", "--variants", "fp32", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"] == {"path": str(h5), "kind": "keras", "sha256": _sha(h5)}
    (v,) = doc["variants"]
    assert v["name"] == "fp32" and v["inputs"][0]["shape_signature"] == [-1, 8, 8, 1]
    with np.load(digits / "eval.npz") as npz:
        x = npz["x"][:40]
    reference = run_tflite(variants.manifest_path.parent / "fp32.tflite", x)
    np.testing.assert_allclose(run_tflite(tmp_path / "out" / "fp32.tflite", x), reference, 1e-5)


@pytest.mark.slow
def test_savedmodel_source(digits, variants, tmp_path):
    import keras

    from harness.convert.variants import quiet_native_output

    saved = tmp_path / "saved"
    with quiet_native_output():
        keras.models.load_model(digits / "digits.keras", compile=False).export(saved)
    result = convert_model(ConvertSpec(saved, tmp_path / "out", ("fp32", "dynamic")))
    assert result.source.kind == "savedmodel"
    assert [v.name for v in result.variants] == ["fp32", "dynamic"]
    for v in result.variants:
        assert v.info.inputs[0].shape_signature == (-1, 8, 8, 1)
        assert v.info.outputs[0].shape_signature == (-1, 10)
    with np.load(digits / "eval.npz") as npz:
        x = npz["x"][:40]
    reference = run_tflite(variants.manifest_path.parent / "fp32.tflite", x)
    np.testing.assert_allclose(run_tflite(tmp_path / "out" / "fp32.tflite", x), reference, 1e-5)
    # the directory's content is the cache key: converting again is a hit
    again = convert_model(ConvertSpec(saved, tmp_path / "out2", ("fp32",)))
    assert again.all_cached and again.source.sha256 == result.source.sha256


def test_tflite_source_is_kept_as_fp32(variants, tmp_path):
    src = variants.manifest_path.parent / "int8.tflite"
    proc = harness("convert", src, "-o", tmp_path / "out", "--json")
    assert proc.returncode == 2  # default variants include int8: needs --calibration
    proc = harness("convert", src, "-o", tmp_path / "out", "--variants", "fp32", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["source"]["kind"] == "tflite"
    (v,) = doc["variants"]
    assert v["name"] == "fp32"
    assert (tmp_path / "out" / "fp32.tflite").read_bytes() == src.read_bytes()
    assert v["sha256"] == _sha(src)
    assert "as-is" in v["converter"]["converter"]


def test_tflite_source_with_a_custom_op_lists_it(variants, tmp_path):
    src = tmp_path / "custom.tflite"
    src.write_bytes(with_custom_op((variants.manifest_path.parent / "fp32.tflite").read_bytes()))
    result = convert_model(ConvertSpec(src, tmp_path / "out", ("fp32",)))
    (v,) = result.variants
    assert v.info.custom_ops == ["HarnessTestOp"]
    assert [op.name for op in v.info.ops if op.custom] == ["HarnessTestOp"]
    assert load_manifest(tmp_path / "out")["variants"][0]["custom_ops"] == ["HarnessTestOp"]


# ----------------------------------------------------------------------------- cache


def test_second_convert_is_a_cache_hit_in_the_cli(variants, digits, tmp_path):
    proc = harness(
        "convert",
        digits / "digits.keras",
        "-o",
        tmp_path / "again",
        "--calibration",
        digits / "calibration.npz",
    )
    assert proc.returncode == 0, proc.stderr
    for name in VARIANTS:
        assert f"{name}: cache hit" in proc.stderr
    assert "converting" not in proc.stderr
    assert "cache hit" in proc.stdout
    for v in variants.variants:
        assert _sha(tmp_path / "again" / v.file) == v.info.sha256


def test_cache_hit_does_no_tensorflow_work(variants, digits, tmp_path):
    code = f"""
import sys
from pathlib import Path
from harness.convert.pipeline import ConvertSpec, convert_model
r = convert_model(ConvertSpec(Path({str(digits / "digits.keras")!r}), Path({str(tmp_path)!r}),
    {VARIANTS!r}, Path({str(digits / "calibration.npz")!r})))
print(r.all_cached, "tensorflow" in sys.modules, "keras" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "False"]
    assert load_manifest(tmp_path) == manifest_dict(variants)  # same files, same facts


def test_cache_key_separates_what_changes_the_output():
    src = ModelSource(Path("m.keras"), "keras", "a" * 64)
    other = ModelSource(Path("elsewhere/m.keras"), "keras", "a" * 64)

    def key(source, variant, int8_io, calibration, kind="keras"):
        return _cache_key(source, recipe_for(kind, variant), int8_io, calibration)

    assert key(src, "fp32", False, None) == key(other, "fp32", False, None)
    keys = {
        key(src, "fp32", False, None),
        key(src, "fp16", False, None),
        key(src, "int8", False, "c1"),
        key(src, "int8", True, "c1"),
        key(src, "int8", False, "c2"),
        key(src, "int16x8", False, "c1"),
        key(src, "w8", False, None),
        key(src, "w4", False, None),
        # the same variant by another tool (the quantizer for a .tflite source)
        key(src, "fp16", False, None, kind="tflite"),
        key(ModelSource(Path("m.keras"), "keras", "b" * 64), "fp32", False, None),
    }
    assert len(keys) == 10
    # --int8-io only matters for the int8 variant
    assert key(src, "fp32", True, None) == key(src, "fp32", False, None)


# ----------------------------------------------------------------------------- bad input

BAD_CASES = (
    "int8 without calibration",
    "calibration wrong shape",
    "calibration without x",
    "calibration of strings",
    "calibration not an npz",
    "calibration missing",
    "missing model",
    "random .keras",
    "truncated .keras",
    "zip without a model .keras",
    "random .tflite",
    "truncated .tflite",
    ".tflite asked for int16x8 without calibration",
    "unknown variant",
    "no variant",
    "unknown format",
    "directory that is not a SavedModel",
    "unwritable output",
)


def _bad_inputs(root: Path, digits: Path, variants_dir: Path) -> dict:
    """name -> (argv, words the error line must contain)."""
    keras_file = digits / "digits.keras"
    rng = np.random.default_rng(0)
    (root / "random.keras").write_bytes(rng.bytes(4096))
    (root / "truncated.keras").write_bytes(keras_file.read_bytes()[:3000])
    with zipfile.ZipFile(root / "junk.keras", "w") as z:
        z.writestr("hello.txt", "not a model")
    (root / "random.tflite").write_bytes(rng.bytes(4096))
    (root / "truncated.tflite").write_bytes((variants_dir / "fp32.tflite").read_bytes()[:3000])
    (root / "model.pb").write_bytes(b"a frozen graph")
    (root / "notsaved").mkdir()
    (root / "file.txt").write_text("a regular file")
    np.savez(root / "small.npz", x=np.zeros((4, 4, 4, 1), np.float32))
    np.savez(root / "nox.npz", images=np.zeros((4, 8, 8, 1), np.float32))
    np.savez(root / "strings.npz", x=np.full((4, 8, 8, 1), "a"))
    (root / "random.npz").write_bytes(rng.bytes(512))
    out = ["-o", root / "out"]
    int8 = ["--variants", "int8"]
    return {
        "int8 without calibration": ([keras_file, *out], ["--calibration"]),
        "calibration wrong shape": (
            [keras_file, *out, *int8, "--calibration", root / "small.npz"],
            ["(4, 4, 1)", "(8, 8, 1)"],
        ),
        "calibration without x": (
            [keras_file, *out, *int8, "--calibration", root / "nox.npz"],
            ["'x'"],
        ),
        "calibration of strings": (
            [keras_file, *out, *int8, "--calibration", root / "strings.npz"],
            ["numeric"],
        ),
        "calibration not an npz": (
            [keras_file, *out, *int8, "--calibration", root / "random.npz"],
            ["random.npz"],
        ),
        "calibration missing": (
            [keras_file, *out, *int8, "--calibration", root / "missing.npz"],
            ["missing.npz"],
        ),
        "missing model": ([root / "missing.keras", *out], ["not found"]),
        "random .keras": ([root / "random.keras", *out, "--variants", "fp32"], ["random.keras"]),
        "truncated .keras": (
            [root / "truncated.keras", *out, "--variants", "fp32"],
            ["truncated.keras"],
        ),
        "zip without a model .keras": (
            [root / "junk.keras", *out, "--variants", "fp32"],
            ["junk.keras"],
        ),
        "random .tflite": (
            [root / "random.tflite", *out, "--variants", "fp32"],
            ["not a TFLite model"],
        ),
        "truncated .tflite": (
            [root / "truncated.tflite", *out, "--variants", "fp32"],
            ["truncated.tflite"],
        ),
        ".tflite asked for int16x8 without calibration": (
            [variants_dir / "fp32.tflite", *out, "--variants", "fp16,int16x8"],
            ["int16x8", "--calibration"],
        ),
        "unknown variant": ([keras_file, *out, "--variants", "fp32,fp8"], ["fp8"]),
        "no variant": ([keras_file, *out, "--variants", ","], ["variant"]),
        "unknown format": ([root / "model.pb", *out], [".pb"]),
        "directory that is not a SavedModel": ([root / "notsaved", *out], ["SavedModel"]),
        "unwritable output": (
            [keras_file, "-o", root / "file.txt" / "sub", "--variants", "fp32"],
            ["output directory"],
        ),
    }


@pytest.fixture(scope="module")
def bad_inputs(digits, variants, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return _bad_inputs(root, digits, variants.manifest_path.parent)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_exit_2(bad_inputs, case):
    argv, words = bad_inputs[case]
    assert_user_error(harness("convert", *argv), *words)


def test_every_bad_input_is_parametrized(bad_inputs):
    assert set(bad_inputs) == set(BAD_CASES)


def test_convert_model_raises_harness_error_for_a_truncated_tflite(variants, tmp_path):
    src = tmp_path / "cut.tflite"
    src.write_bytes((variants.manifest_path.parent / "fp32.tflite").read_bytes()[:5000])
    with pytest.raises(HarnessError, match="cut.tflite"):
        convert_model(ConvertSpec(src, tmp_path / "out", ("fp32",)))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_file_sha256_reads_in_blocks(tmp_path):
    data = np.random.default_rng(1).bytes(3 << 20)
    (tmp_path / "big").write_bytes(data)
    assert file_sha256(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_reconverting_with_fewer_variants_leaves_no_stale_files(variants, tmp_path):
    from harness.convert.pipeline import ConvertSpec, convert_model

    src = variants.manifest_path.parent / "fp32.tflite"
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("fp16.tflite", "int8.tflite"):
        (out / stale).write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    convert_model(ConvertSpec(src, out, ("fp32",)))
    assert sorted(p.name for p in out.iterdir()) == ["fp32.tflite", "manifest.json", "notes.txt"]
