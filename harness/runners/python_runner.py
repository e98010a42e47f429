"""Host side of the device_scripts Python runner: stage files, send a job, read results.

One runner process serves many cells (start-up cost paid once). If it dies mid-job,
the cell it was on is failed with the reason and a fresh process takes the rest, so a
crashing model costs one cell, never the sweep.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import device_scripts
from harness.devices.base import Device
from harness.errors import HarnessError

RUNNER_PATH = Path(device_scripts.__file__).with_name("runner.py")
JOB_SCHEMA = 1
MAX_LINE = 16 << 20  # a result line larger than this is not from our runner
MAX_OUTPUTS = 256 << 20


@dataclass(frozen=True)
class JobCell:
    """One cell as the runner sees it: an id, a staged-on-host model file, delegate, threads."""

    id: str
    model_file: Path
    model_sha256: str
    delegate: str
    threads: int
    timing: bool = True


@dataclass(frozen=True)
class TimingConfig:
    """How long to time each cell."""

    runs: int = 100
    min_secs: float | None = None
    warmup: int = 10
    timeout_s: float = 600.0


def run_cells(
    device: Device, cells: list[JobCell], timing: TimingConfig, eval_file: Path | None
) -> Iterator[tuple[JobCell, dict]]:
    """Yield (cell, raw result) for every cell, in order, restarting a dead runner."""
    runner = device.stage(RUNNER_PATH, _sha(RUNNER_PATH), ".py")
    eval_remote = device.stage(eval_file, _sha(eval_file), ".npz") if eval_file else None
    remaining = list(cells)
    attempt = 0
    while remaining:
        attempt += 1
        job_cells = [
            {
                "id": c.id,
                "model": device.stage(c.model_file, c.model_sha256, ".tflite"),
                "delegate": c.delegate,
                "threads": c.threads,
                "timing": c.timing,
            }
            for c in remaining
        ]
        outputs_dir = f"{device.workdir()}/outputs"
        job = {
            "schema": JOB_SCHEMA,
            "cells": job_cells,
            "runs": timing.runs,
            "min_secs": timing.min_secs,
            "warmup": timing.warmup,
            "eval": eval_remote,
            "outputs_dir": outputs_dir,
        }
        job_path = _write_job(device, job, attempt)
        env = None
        by_id = {c.id: c for c in remaining}
        for line in device.stream([device.python(), runner, job_path], timeout=timing.timeout_s):
            doc = _parse_line(line)
            if doc is None:
                continue
            if doc.get("type") == "hello":
                env = doc.get("env")
            elif doc.get("type") == "cell" and doc.get("id") in by_id:
                cell = by_id.pop(doc["id"])
                remaining.remove(cell)
                doc["env"] = env or {}
                if doc.get("eval"):
                    doc["eval"]["outputs"] = _read_outputs(device, outputs_dir, doc["eval"])
                yield cell, doc
        if remaining:  # the runner died on remaining[0]: fail it, restart for the rest
            dead = remaining.pop(0)
            code = getattr(device, "returncode", None)
            yield (
                dead,
                {
                    "status": "failed",
                    "env": env or {},
                    "reason": f"runner process died (exit {code}) during this cell",
                },
            )


def _write_job(device: Device, job: dict, attempt: int) -> str:
    path = Path(device.workdir()) / f"job-{attempt}.json"
    if device.name == "local":
        path.write_text(json.dumps(job))
        return str(path)
    return device.write_text(str(path), json.dumps(job))  # ADB devices push the job file


def _parse_line(line: str) -> dict | None:
    # Device output is untrusted: bounded, JSON objects only, our schema only.
    if len(line) > MAX_LINE or not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == JOB_SCHEMA else None


def _read_outputs(device: Device, outputs_dir: str, ev: dict) -> np.ndarray | None:
    name = str(ev.get("outputs_file", ""))
    if not name or "/" in name or name.startswith("."):
        return None
    data = device.pull_bytes(f"{outputs_dir}/{name}", MAX_OUTPUTS)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise HarnessError(f"unreadable outputs from the device: {exc}") from exc
    return np.asarray(arr, dtype=np.float32)


def _sha(path: Path) -> str:
    from harness.convert.sources import file_sha256

    return file_sha256(path)
