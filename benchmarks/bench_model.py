"""A model big enough to time honestly (invoke well over 1 ms): MobileNetV2, random weights.

Built locally with keras.applications (weights=None: nothing downloaded) and converted
through `harness convert`, so repeated benchmark runs hit the conversion cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.convert.pipeline import ConvertSpec, convert_model

SIZE = 160
ALPHA = 0.75


def build_variants(work: Path, variants: tuple[str, ...] = ("fp32",)) -> Path:
    """Convert MobileNetV2(SIZE, ALPHA) into `variants` under work/variants; return that dir."""
    src = work / "mobilenet_v2.keras"
    calib = work / "calibration.npz"
    if not src.exists():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        keras.utils.set_random_seed(0)
        model = keras.applications.MobileNetV2(
            input_shape=(SIZE, SIZE, 3), alpha=ALPHA, weights=None, classes=10
        )
        work.mkdir(parents=True, exist_ok=True)
        model.save(src)
        rng = np.random.default_rng(0)
        np.savez(calib, x=rng.random((16, SIZE, SIZE, 3), dtype=np.float32))
    out = work / "variants"
    convert_model(ConvertSpec(src, out, variants, calib if "int8" in variants else None))
    return out
