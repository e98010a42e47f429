"""The conversion worker: `python -m harness.convert.worker` < job.json.

`harness convert` answers cache hits itself and starts this process only for the
variants it must make, so TensorFlow, onnx2tf and the quantizer are imported here and
never in the CLI. The source is loaded once; each variant is then made by its recipe's
tool (harness.convert.recipes) and reported on the protocol stream, one JSON object a
line:

  {"event": "start", "variant": V}
  {"event": "done", "variant": V, "file": PATH, "converter": {...}}
  {"event": "unsupported", "variant": V, "reason": TEXT, "converter": {...}}
  {"event": "error", "message": TEXT}          (a user error: the CLI exits 2)

The protocol stream is the worker's original stdout; fd 1 is pointed at stderr before
anything is imported, because TensorFlow and onnx2tf print to stdout freely.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.convert.recipes import QUANTIZER, TF_CONVERTER, recipe_for
from harness.convert.sources import ModelSource
from harness.errors import HarnessError


@dataclass(frozen=True)
class Job:
    """What the parent asks the worker to make (written as JSON on its stdin)."""

    source: ModelSource
    variants: tuple[str, ...]
    out_dir: Path  # the worker writes <variant>.tflite here; the parent moves them
    calibration: Path | None = None
    int8_io: bool = False
    fp32_file: Path | None = None  # a cached fp32 the quantizer recipes may start from

    def to_dict(self) -> dict:
        return {
            "source": self.source.to_dict(),
            "variants": list(self.variants),
            "out_dir": str(self.out_dir),
            "calibration": str(self.calibration) if self.calibration else None,
            "int8_io": self.int8_io,
            "fp32_file": str(self.fp32_file) if self.fp32_file else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        src = d["source"]
        return cls(
            ModelSource(Path(src["path"]), src["kind"], src["sha256"]),
            tuple(d["variants"]),
            Path(d["out_dir"]),
            Path(d["calibration"]) if d.get("calibration") else None,
            bool(d.get("int8_io")),
            Path(d["fp32_file"]) if d.get("fp32_file") else None,
        )


class _Source:
    """The loaded source, each heavy step done at most once and only when needed."""

    def __init__(self, job: Job, work: Path):
        self.job = job
        self.work = work
        self._graph = None  # (ModelSource the TF converter reads, keras model or None)
        self._fp32: bytes | None = None

    def graph(self):
        if self._graph is None:
            from harness.convert.variants import load_converter_model

            source = self.job.source
            if source.kind == "onnx":
                from harness.convert.onnx_source import onnx_to_savedmodel

                saved = onnx_to_savedmodel(source.path, self.work)
                source = ModelSource(saved, "savedmodel", source.sha256)
            self._graph = (source, load_converter_model(source))
        return self._graph

    def fp32(self) -> bytes:
        if self._fp32 is None:
            if self.job.source.kind == "tflite":
                self._fp32 = self.job.source.path.read_bytes()
            elif self.job.fp32_file is not None and self.job.fp32_file.is_file():
                self._fp32 = self.job.fp32_file.read_bytes()
            else:
                from harness.convert.variants import convert_variant

                source, model = self.graph()
                self._fp32 = convert_variant(source, model, "fp32")
        return self._fp32


def run_job(job: Job, emit) -> None:
    """Make every variant of `job`, reporting each through `emit(dict)`."""
    calibration = _load_calibration(job.calibration)
    with tempfile.TemporaryDirectory(prefix="harness-convert-") as tmp:
        src = _Source(job, Path(tmp))
        for name in job.variants:
            emit({"event": "start", "variant": name})
            recipe = recipe_for(job.source.kind, name)
            try:
                data, converter = _make(src, name, recipe.tool, calibration, job.int8_io)
                if name != "fp32":  # the reference is kept whatever the host runtime says
                    _check_quantised(data, name, converter)
                    _check_loads(data, name, converter)
            except _Unsupported as exc:
                emit(
                    {
                        "event": "unsupported",
                        "variant": name,
                        "reason": str(exc),
                        "converter": exc.converter,
                    }
                )
                continue
            path = job.out_dir / f"{name}.tflite"
            path.write_bytes(data)
            emit({"event": "done", "variant": name, "file": str(path), "converter": converter})


class _Unsupported(Exception):
    def __init__(self, reason: str, converter: dict):
        super().__init__(reason)
        self.converter = converter


def _make(src: _Source, name: str, tool: str, calibration, int8_io: bool) -> tuple[bytes, dict]:
    kind = src.job.source.kind
    if name == "fp32" and kind == "tflite":
        return src.fp32(), {"converter": "as-is (.tflite source)"}
    if tool == TF_CONVERTER:
        return _tf_variant(src, name, calibration, int8_io)
    assert tool == QUANTIZER
    from harness.convert.quantizer import RecipeRejected, quantize_tflite, quantizer_version

    converter = quantizer_version() | _base_versions(src)
    fp32 = src.fp32()
    if calibration is not None and kind == "tflite":
        _check_calibration_tflite(calibration, fp32)
    try:
        data = quantize_tflite(fp32, name, calibration)
    except RecipeRejected as exc:
        raise _Unsupported(str(exc), converter) from exc
    return data, converter


def _tf_variant(src: _Source, name: str, calibration, int8_io: bool) -> tuple[bytes, dict]:
    from harness.convert.variants import convert_variant, input_shape, tensorflow_versions

    source, model = src.graph()
    converter = tensorflow_versions() | _base_versions(src)
    if calibration is not None and name in ("int8", "int16x8"):
        _check_calibration_shape(calibration, input_shape(source, model))
    try:
        data = convert_variant(source, model, name, calibration, int8_io)
    except HarnessError as exc:
        if name == "fp32":
            raise  # nothing to benchmark without the float model: a user-facing error
        raise _Unsupported(str(exc), converter) from exc
    if name == "fp32":
        src._fp32 = data  # the quantizer recipes start from this very file
    return data, converter


def _base_versions(src: _Source) -> dict:
    if src.job.source.kind == "onnx":
        from harness.convert.onnx_source import onnx_versions

        return onnx_versions()
    return {}


def _check_quantised(data: bytes, name: str, converter: dict) -> None:
    """A recipe that left every tensor float (no op of the model takes it: no weights
    to quantise) would be the fp32 model under another name: unsupported instead."""
    from ai_edge_litert import schema_py_generated as schema

    narrow = {
        getattr(schema.TensorType, t)
        for t in ("INT8", "UINT8", "INT16", "INT4", "FLOAT16")
        if hasattr(schema.TensorType, t)
    }
    model = schema.Model.GetRootAs(data, 0)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        if any(graph.Tensors(i).Type() in narrow for i in range(graph.TensorsLength())):
            return
    tool = converter.get("converter", "the converter")
    raise _Unsupported(
        f"{tool} left every tensor float32: no op of this model takes the {name} recipe",
        converter,
    )


def _check_loads(data: bytes, name: str, converter: dict) -> None:
    """A variant the LiteRT interpreter cannot even allocate is unsupported, with its
    reason, rather than a file every cell of `harness run` would fail on alike."""
    from harness.convert.tflite_info import inspect_tflite

    if inspect_tflite(data, label=f"{name} variant").custom_ops:
        return  # custom ops need the user's resolver: the device decides, not the host
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=data).allocate_tensors()
    except Exception as exc:  # RuntimeError/ValueError from the C++ runtime
        text = str(exc).strip().splitlines()
        reason = text[0][:300] if text else type(exc).__name__
        raise _Unsupported(f"LiteRT cannot load the {name} variant: {reason}", converter) from exc


def _load_calibration(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as npz:  # checked by the parent already
        return np.asarray(npz["x"])


def _check_calibration_shape(x: np.ndarray, shape) -> None:
    if shape is None:
        return
    want = tuple(shape[1:])
    if tuple(x.shape[1:]) != want:
        raise HarnessError(
            f"calibration data has samples of shape {tuple(x.shape[1:])}, the model expects {want}"
        )


def _check_calibration_tflite(x: np.ndarray, fp32: bytes) -> None:
    from harness.convert.tflite_info import inspect_tflite

    inputs = inspect_tflite(fp32).inputs
    if len(inputs) == 1:
        _check_calibration_shape(x, inputs[0].shape_signature)


def main() -> int:
    """Read the job from stdin, write protocol lines to the original stdout."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout (TF, onnx2tf) goes to stderr
    sys.stdout = sys.stderr

    def emit(event: dict) -> None:
        protocol.write(json.dumps(event) + "\n")

    try:
        run_job(Job.from_dict(json.load(sys.stdin)), emit)
    except HarnessError as exc:
        emit({"event": "error", "message": str(exc)})
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
