"""Quantise a float .tflite with Google's AI Edge Quantizer (PyPI `litert-quantizer`).

Runs only inside the conversion worker (harness.convert.worker): the import pulls in
absl and the quantizer's flatbuffer tooling, which the CLI must never pay for.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from harness.errors import HarnessError

DISTRIBUTION = "litert-quantizer"


class RecipeRejected(Exception):
    """The quantizer cannot apply this recipe to this model: the variant is unsupported."""


def quantizer_version() -> dict:
    """The tool and its version, recorded in each quantised variant's manifest entry."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    return {"converter": DISTRIBUTION, DISTRIBUTION: version}


def quantize_tflite(float_model: bytes, variant: str, calibration: np.ndarray | None) -> bytes:
    """`float_model` quantised by the recipe behind `variant`; RecipeRejected when the
    quantizer refuses (an op or dtype the recipe has no rule for)."""
    try:
        from litert_quantizer import Quantizer
    except ImportError as exc:
        raise HarnessError(
            f"variant {variant} of a .tflite needs the quantizer: pip install "
            "'harness[quantize]' (litert-quantizer)"
        ) from exc
    try:
        quantizer = Quantizer(bytearray(float_model), _recipe(variant))
        result = None
        if quantizer.need_calibration:
            if calibration is None:
                raise HarnessError(
                    f"variant {variant} needs a representative dataset: pass --calibration FILE.npz"
                )
            result = quantizer.calibrate(_calibration_data(float_model, calibration))
        model = quantizer.quantize(result, enable_progress_report=False).quantized_model
    except HarnessError:
        raise
    except Exception as exc:  # the quantizer raises ValueError/RuntimeError/KeyError alike
        raise RecipeRejected(f"{DISTRIBUTION}: {_first_line(exc)}") from exc
    if model is None:
        raise RecipeRejected(f"{DISTRIBUTION} returned no model")
    return bytes(model)


def _recipe(variant: str):
    from litert_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

    if variant == "fp16":
        # float16 weights: the weight-only config with the FLOAT_CASTING algorithm
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            ".*",
            qtyping.TFLOperationName.ALL_SUPPORTED,
            16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
        return manager.get_quantization_recipe()
    makers = {
        "dynamic": recipe.dynamic_wi8_afp32,
        "int8": recipe.static_wi8_ai8,
        "int16x8": recipe.static_wi8_ai16,
        "w8": recipe.weight_only_wi8_afp32,
        "w4": recipe.weight_only_wi4_afp32,
    }
    if variant not in makers:
        raise HarnessError(f"variant {variant} has no {DISTRIBUTION} recipe")
    return makers[variant]()


def _calibration_data(float_model: bytes, x: np.ndarray) -> dict:
    """{signature: [{input name: one sample}]}: the quantizer calibrates per signature."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=float_model).get_signature_list()
    if len(signatures) != 1:
        raise HarnessError(
            f"the model has {len(signatures)} signatures; calibration takes a model with one"
        )
    ((key, sig),) = signatures.items()
    if len(sig["inputs"]) != 1:
        raise HarnessError(
            f"the model has {len(sig['inputs'])} inputs; --calibration 'x' feeds one"
        )
    name = sig["inputs"][0]
    return {key: [{name: sample[None].astype(np.float32)} for sample in x]}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
