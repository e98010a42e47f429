"""TensorFlow work: turn a Keras/SavedModel source into one TFLite variant.

TensorFlow is imported lazily here and nowhere else on the host, so a cache hit,
`harness run` and `harness report` never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

# re-exported: harness.lab and older callers import the variant names from here
from harness.convert.recipes import VARIANT_HELP, VARIANTS, parse_variants  # noqa: F401
from harness.convert.sources import ModelSource
from harness.errors import HarnessError


def tensorflow_versions() -> dict:
    """Versions of the converter stack, recorded in the manifest."""
    tf = _tf()
    import keras

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "converter": "TFLiteConverter",
    }


def load_converter_model(source: ModelSource):
    """Load the source once; the returned object feeds every variant's converter."""
    tf = _tf()
    if source.kind == "keras":
        import keras

        try:
            with quiet_native_output():
                return keras.models.load_model(source.path, compile=False)
        except Exception as exc:
            raise HarnessError(
                f"{source.path}: not a loadable Keras model ({_first_line(exc)})"
            ) from exc
    try:
        with quiet_native_output():
            tf.saved_model.load(str(source.path))
    except Exception as exc:
        raise HarnessError(
            f"{source.path}: not a loadable SavedModel ({_first_line(exc)})"
        ) from exc
    return None  # SavedModels are converted from their directory


def input_shape(source: ModelSource, keras_model) -> tuple[int | None, ...] | None:
    """The single input's shape including batch, when the source says it; else None."""
    if keras_model is not None and len(keras_model.inputs) == 1:
        return tuple(keras_model.inputs[0].shape)
    return None


def convert_variant(
    source: ModelSource,
    keras_model,
    variant: str,
    calibration: np.ndarray | None = None,
    int8_io: bool = False,
) -> bytes:
    """Run the TFLite converter for one variant and return the flatbuffer bytes.

    Only fp32, fp16, dynamic, int8 and int16x8 are TFLiteConverter recipes; w8/w4 are
    the quantizer's (harness.convert.recipes.recipe_for)."""
    tf = _tf()
    if keras_model is not None:
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(source.path))
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif variant in ("int8", "int16x8"):
        if calibration is None:
            raise HarnessError(
                f"variant {variant} needs a representative dataset: pass --calibration FILE.npz"
            )
        converter.representative_dataset = lambda: _representative(calibration)
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [
            ops.TFLITE_BUILTINS_INT8
            if variant == "int8"
            # 16-bit activations, 8-bit weights; without a float fallback, an op with no
            # 16x8 kernel fails the conversion (the variant is then unsupported)
            else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if int8_io and variant == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        with quiet_native_output():
            return bytes(converter.convert())
    except Exception as exc:
        raise HarnessError(f"conversion to {variant} failed: {_first_line(exc)}") from exc


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silence TensorFlow's C++ and Python chatter on fds 1/2 for the duration.

    The converter logs graph dumps straight to the file descriptors, which would bury
    harness's own output; set HARNESS_VERBOSE=1 to see it.
    """
    if os.environ.get("HARNESS_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _representative(x: np.ndarray) -> Iterator[list[np.ndarray]]:
    for sample in x:
        yield [sample[None, ...].astype(np.float32)]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with quiet_native_output():  # the import itself logs oneDNN/absl lines to fd 2
            import tensorflow as tf
    except ImportError as exc:
        raise HarnessError(
            "converting needs TensorFlow: pip install 'harness[convert]' (tensorflow-cpu)"
        ) from exc
    return tf
