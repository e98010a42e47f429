"""Train the sample model: a small CNN on scikit-learn's bundled 8x8 digits.

Writes OUT/digits.keras, OUT/eval.npz (held-out x, y) and OUT/calibration.npz
(training images for int8 calibration). Trains in seconds on a laptop CPU and
needs no network: the data ships inside scikit-learn.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SEED = 0


def load_digits_split(seed: int = SEED) -> tuple[np.ndarray, ...]:
    """Return (x_train, y_train, x_eval, y_eval), images as float32 NHWC in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y))


def build_model(width: int = 1):
    """A CNN big enough that quantisation effects show, small enough to train in seconds.

    `width` multiplies the channels of both convolutions and the hidden dense layer
    (1: 16/32/64; 4: 64/128/256), e.g. for an A/B comparison against a wider self.
    """
    import keras

    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(16 * width, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32 * width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(64 * width, activation="relu"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="digits_cnn",
    )


def train(out: Path, epochs: int = 30, seed: int = SEED, width: int = 1) -> float:
    """Train, save the model and data files under `out`; return held-out accuracy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    x_train, x_eval, y_train, y_eval = load_digits_split(seed)
    model = build_model(width)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_eval, y_eval, verbose=0)

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "digits.keras")
    np.savez(out / "eval.npz", x=x_eval, y=y_eval)
    np.savez(out / "calibration.npz", x=x_train[:200])
    return float(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo/model"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--width", type=int, default=1, help="channel multiplier (default 1: 16/32/64)"
    )
    args = parser.parse_args()
    if (args.out / "digits.keras").exists():
        print(f"digits model already trained: {args.out / 'digits.keras'}")
        return
    accuracy = train(args.out, args.epochs, width=args.width)
    print(f"trained digits CNN (x{args.width}): held-out top-1 {accuracy:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
