"""Variant names, what each one is, and which tool makes it for which source kind.

Pure data and a few lookups: no TensorFlow, no quantizer import, so the CLI can parse
`--variants` and the pipeline can plan (and answer from the cache) without either.

Tools:
  tflite-converter   TensorFlow's TFLiteConverter, for Keras, SavedModel and ONNX
                     (onnx2tf -> SavedModel) sources, for every recipe it offers.
  litert-quantizer   Google's AI Edge Quantizer (PyPI `litert-quantizer`, formerly
                     `ai-edge-quantizer`): it rewrites an existing float .tflite, so it
                     is the only way to quantise a .tflite source, and the way to the
                     weight-only recipes (w8, w4) the TF converter does not offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError

TF_CONVERTER = "tflite-converter"
QUANTIZER = "litert-quantizer"
AS_IS = "as-is"

VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int16x8", "w8", "w4")
# What `harness convert` makes when --variants is not given (the pre-recipe four):
# the newer recipes are asked for by name, so an old command line converts as before.
DEFAULT_VARIANTS = ("fp32", "fp16", "dynamic", "int8")
CALIBRATED = frozenset({"int8", "int16x8"})  # static activation ranges need sample inputs

VARIANT_HELP = {
    "fp32": "float32 weights and activations (the accuracy reference)",
    "fp16": "float16 weights, float32 compute on CPU; the GPU delegate's friend",
    "dynamic": "dynamic-range: int8 weights, activations quantised on the fly",
    "int8": "full integer with a representative dataset (float or int8 I/O)",
    "int16x8": "int16 activations, int8 weights (calibrated): closer to fp32 than int8",
    "w8": "weight-only int8: weights dequantised to float before each op",
    "w4": "weight-only int4 (channelwise): smallest file, float compute",
}

# The quantizer's own recipe behind each variant (litert_quantizer.recipe names, or the
# weight-only config with FLOAT_CASTING for fp16), recorded in the manifest.
QUANTIZER_RECIPES = {
    "fp16": "weight_only float16 (FLOAT_CASTING)",
    "dynamic": "dynamic_wi8_afp32",
    "int8": "static_wi8_ai8",
    "int16x8": "static_wi8_ai16",
    "w8": "weight_only_wi8_afp32",
    "w4": "weight_only_wi4_afp32",
}
# The TFLiteConverter settings behind each variant it makes.
TF_RECIPES = {
    "fp32": "no optimizations",
    "fp16": "Optimize.DEFAULT, supported_types=[float16]",
    "dynamic": "Optimize.DEFAULT",
    "int8": "Optimize.DEFAULT, representative_dataset, TFLITE_BUILTINS_INT8",
    "int16x8": (
        "Optimize.DEFAULT, representative_dataset, "
        "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
    ),
}


@dataclass(frozen=True)
class Recipe:
    """How one variant is made from one kind of source."""

    variant: str
    tool: str  # TF_CONVERTER | QUANTIZER | AS_IS
    detail: str  # the tool's own name for the recipe (see the tables above)
    calibrated: bool

    def to_dict(self) -> dict:
        return {
            "name": self.variant,
            "tool": self.tool,
            "detail": self.detail,
            "calibrated": self.calibrated,
        }


def parse_variants(text: str) -> tuple[str, ...]:
    """'fp32,int8' -> ('fp32', 'int8'); unknown names are a user error."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise HarnessError(f"unknown variant {given}; choose from {', '.join(VARIANTS)}")
    return names


def recipe_for(source_kind: str, variant: str) -> Recipe:
    """The tool and recipe that make `variant` from a source of `source_kind`.

    A .tflite source is already converted: fp32 is the file itself, every other variant
    is the quantizer's. Graph sources (Keras, SavedModel, ONNX via onnx2tf) go through
    the TF converter where it has the recipe, so their fp16/dynamic/int8 stay what they
    were before the quantizer existed; w8/w4 are the quantizer's on the converted fp32.
    """
    calibrated = variant in CALIBRATED
    if source_kind == "tflite":
        if variant == "fp32":
            return Recipe(variant, AS_IS, "the .tflite source itself", False)
        return Recipe(variant, QUANTIZER, QUANTIZER_RECIPES[variant], calibrated)
    if variant in TF_RECIPES:
        return Recipe(variant, TF_CONVERTER, TF_RECIPES[variant], calibrated)
    return Recipe(variant, QUANTIZER, QUANTIZER_RECIPES[variant], calibrated)
