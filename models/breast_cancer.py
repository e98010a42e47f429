"""The demo's trade-off model: a small binary scorer on scikit-learn's bundled
breast-cancer data (569 samples, 30 features; no download).

Writes OUT/breast_cancer.keras, OUT/eval.npz (held-out x, y: 0 malignant, 1 benign)
and OUT/calibration.npz (training rows for int8 calibration). The network is a
deliberately wide-then-narrow MLP on standardised features, so its variants differ
in latency, and full-integer quantisation with int8 input/output (`--int8-io`)
loses measurable ROC AUC: the int8 input grid is coarse for 30 standardised features.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SEED = 0


def load_split(seed: int = SEED) -> tuple[np.ndarray, ...]:
    """(x_train, x_eval, y_train, y_eval), features standardised on the training rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x_train, x_eval, y_train, y_eval = train_test_split(
        data.data.astype(np.float32),
        data.target.astype(np.int64),
        test_size=0.3,
        random_state=seed,
        stratify=data.target,
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    return (x_train - mean) / std, (x_eval - mean) / std, y_train, y_eval


def build_model(width: int = 512):
    """30 features -> width -> width -> 16 -> 1 sigmoid score of class 1 (benign)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(30,), name="features"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid", name="score"),
        ],
        name="breast_cancer_mlp",
    )


def train(out: Path, epochs: int = 40, seed: int = SEED) -> float:
    """Train, save the model and data files under `out`; return held-out accuracy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    x_train, x_eval, y_train, y_eval = load_split(seed)
    model = build_model()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_eval, y_eval, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "breast_cancer.keras")
    np.savez(out / "eval.npz", x=x_eval, y=y_eval)
    np.savez(out / "calibration.npz", x=x_train[:100])
    return float(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/demo/model"))
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    if (args.out / "breast_cancer.keras").exists():
        print(f"breast-cancer model already trained: {args.out / 'breast_cancer.keras'}")
        return
    accuracy = train(args.out, args.epochs)
    print(f"trained breast-cancer MLP: held-out accuracy {accuracy:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
