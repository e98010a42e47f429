"""ONNX sources: `model.onnx` -> a TensorFlow SavedModel with onnx2tf, in the worker.

The SavedModel then goes through the same TFLiteConverter recipes as any SavedModel,
so every variant of an ONNX model comes from one converted float graph.

onnx2tf transposes NCHW inputs to NHWC by default. harness asks it to keep every
input's layout as the ONNX file declares it (`keep_ncw_or_nchw_or_ncdhw_input_names`),
so the eval and calibration data that fit the ONNX model fit its TFLite variants too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
from importlib import metadata
from pathlib import Path

from harness.errors import HarnessError

# What onnx2tf needs beside itself (its 1.28 wheel declares no dependencies; 1.29+ pins
# tensorflow 2.19 and numpy 1.26, which cannot sit beside tensorflow-cpu 2.21).
ONNX_HINT = (
    "pip install 'harness[onnx]' && pip install --no-deps tf-keras==2.21.0 "
    "(tf-keras' own dependency would add a second TensorFlow beside tensorflow-cpu)"
)


def onnx_versions() -> dict:
    """Converter stack of an ONNX source, for the manifest."""
    names = ("onnx2tf", "onnx", "onnxruntime", "tf_keras")
    return {"onnx_converter": "onnx2tf"} | {n: _version(n) for n in names}


def load_onnx(path: Path):
    """The parsed, checked ONNX model; one clear line for a file that is not one."""
    _require()
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, OSError alike
        raise HarnessError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from exc
    if not model.graph.node:
        raise HarnessError(f"{path}: the ONNX graph has no nodes")
    return model


def unconvertible_ops(model) -> list[tuple[str, str]]:
    """(op type, node name) of nodes onnx2tf has no converter for, before it runs.

    onnx2tf looks each op up as module onnx2tf.ops.<OpType> and fails on the first it
    lacks, after a long log; checking up front names every such op at once."""
    missing = []
    for node in model.graph.node:
        domain_ok = node.domain in ("", "ai.onnx")
        if not domain_ok or importlib.util.find_spec(f"onnx2tf.ops.{node.op_type}") is None:
            op = node.op_type if domain_ok else f"{node.domain}.{node.op_type}"
            missing.append((op, node.name or "(unnamed)"))
    return missing


def onnx_to_savedmodel(path: Path, work_dir: Path) -> Path:
    """Convert `path` with onnx2tf into a SavedModel under `work_dir`; return its path."""
    model = load_onnx(path)
    if missing := unconvertible_ops(model):
        ops = ", ".join(dict.fromkeys(op for op, _ in missing))
        first_op, first_node = missing[0]
        raise HarnessError(
            f"{path}: onnx2tf {_version('onnx2tf')} cannot convert ONNX op {ops} "
            f"(first at node {first_node!r})"
        )
    keep = [i.name for i in model.graph.input if 3 <= len(i.type.tensor_type.shape.dim) <= 5]
    out = work_dir / "onnx2tf"
    # onnx2tf writes the model back to its input path (it names unnamed nodes in place):
    # it gets a copy, so the user's file, and the source hash keying the cache, stay put
    copy = work_dir / "source.onnx"
    shutil.copyfile(path, copy)
    import onnx2tf

    log = io.StringIO()
    try:
        # onnx2tf prints its progress and errors (colour codes included) to stdout, and
        # exits the process (sys.exit(1)) on some failures: both are kept in here.
        with contextlib.redirect_stdout(log):
            onnx2tf.convert(
                input_onnx_file_path=str(copy),
                output_folder_path=str(out),
                not_use_onnxsim=True,  # onnxsim is an extra ~30 MB and a subprocess
                keep_ncw_or_nchw_or_ncdhw_input_names=keep or None,
                non_verbose=True,
            )
    except (Exception, SystemExit) as exc:
        node = getattr(exc, "onnx_op_name", None)
        where = f" at node {node!r} ({_op_of(model, node)})" if node else ""
        raise HarnessError(
            f"{path}: onnx2tf {_version('onnx2tf')} failed{where}: {_first_line(exc)}"
        ) from exc
    if not (out / "saved_model.pb").is_file():
        raise HarnessError(f"{path}: onnx2tf wrote no SavedModel ({_last_line(log.getvalue())})")
    return out


def _require() -> None:
    for module in ("onnx", "onnx2tf", "onnx_graphsurgeon"):
        if importlib.util.find_spec(module) is None:
            raise HarnessError(f"ONNX sources need {module}: {ONNX_HINT}")
    if importlib.util.find_spec("tf_keras") is None:
        raise HarnessError(f"ONNX sources need tf_keras (onnx2tf builds with it): {ONNX_HINT}")


def _op_of(model, node_name: str) -> str:
    for node in model.graph.node:
        if node.name == node_name:
            return f"op {node.op_type}"
    return "op unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
