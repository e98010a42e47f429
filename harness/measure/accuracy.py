"""Accuracy and output drift from raw outputs: pure functions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Drift:
    """How far a cell's outputs are from the fp32 CPU reference on the same inputs."""

    max_abs: float
    mean_abs: float
    top1_agreement: float

    def to_dict(self) -> dict:
        return asdict(self)


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose arg-max output equals the label."""
    if len(outputs) != len(labels):
        raise ValueError(f"{len(outputs)} outputs for {len(labels)} labels")
    return float(np.mean(np.argmax(outputs, axis=1) == np.asarray(labels).reshape(-1)))


def output_drift(outputs: np.ndarray, reference: np.ndarray) -> Drift:
    """Absolute error and top-1 agreement against the reference outputs."""
    if outputs.shape != reference.shape:
        raise ValueError(f"outputs {outputs.shape} vs reference {reference.shape}")
    err = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    agree = np.mean(np.argmax(outputs, axis=1) == np.argmax(reference, axis=1))
    return Drift(float(err.max(initial=0.0)), float(err.mean()) if err.size else 0.0, float(agree))
