"""The on-device runner (device_scripts/runner.py) and its host side, with real inference."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import with_custom_op

from harness.convert.sources import file_sha256
from harness.devices.local import LocalDevice
from harness.measure.accuracy import top1_accuracy
from harness.runners.python_runner import RUNNER_PATH, JobCell, TimingConfig, run_cells

TIMING = TimingConfig(runs=20, warmup=2, timeout_s=120)


@pytest.fixture(scope="module")
def models(variants, tmp_path_factory) -> dict[str, Path]:
    """The converted variants plus a custom-op model and a random-bytes 'model'."""
    root = tmp_path_factory.mktemp("runner-models")
    out = variants.manifest_path.parent
    paths = {v.name: out / v.file for v in variants.variants}
    paths["custom"] = root / "custom.tflite"
    paths["custom"].write_bytes(with_custom_op(paths["fp32"].read_bytes()))
    paths["random"] = root / "random.tflite"
    paths["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    return paths


def _job_cell(cid: str, model: Path, delegate: str, threads: int = 1, **kw) -> JobCell:
    return JobCell(cid, model, file_sha256(model), delegate, threads, **kw)


def _run_script(tmp_path: Path, cells: list[dict], eval_file: Path | None = None) -> list[dict]:
    job = {
        "schema": 1,
        "cells": cells,
        "runs": 20,
        "min_secs": None,
        "warmup": 2,
        "eval": str(eval_file) if eval_file else None,
        "outputs_dir": str(tmp_path / "outputs"),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [sys.executable, RUNNER_PATH, tmp_path / "job.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]


# ----------------------------------------------------------------------------- runner.py


def test_runner_script_measures_and_reports_every_cell(models, digits, tmp_path):
    cells = [
        {"id": "cpu", "model": str(models["fp32"]), "delegate": "cpu", "threads": 1},
        {"id": "xnn", "model": str(models["fp32"]), "delegate": "xnnpack", "threads": 2},
        {"id": "gpu", "model": str(models["fp32"]), "delegate": "gpu", "threads": 1},
        {"id": "nnapi", "model": str(models["fp32"]), "delegate": "nnapi", "threads": 1},
        {"id": "custom", "model": str(models["custom"]), "delegate": "cpu", "threads": 1},
        {"id": "random", "model": str(models["random"]), "delegate": "xnnpack", "threads": 1},
    ]
    # heartbeats come whenever a cell is quiet for a second: how many depends on the host
    lines = [
        d for d in _run_script(tmp_path, cells, digits / "eval.npz") if d["type"] != "heartbeat"
    ]
    assert [d["type"] for d in lines] == ["hello"] + ["cell"] * 6 + ["bye"]
    assert all(d["schema"] == 1 for d in lines)
    env = lines[0]["env"]
    assert env["runtime"] == "ai-edge-litert" and env["cpu_count"] >= 1
    got = {d["id"]: d for d in lines[1:-1]}
    assert list(got) == [c["id"] for c in cells]  # in job order

    with np.load(digits / "eval.npz") as npz:
        n_eval = len(npz["x"])
    for cid in ("cpu", "xnn"):
        d = got[cid]
        assert d["status"] == "ok" and d["reason"] is None
        assert len(d["invoke_us"]) == len(d["e2e_us"]) == 20
        assert len(d["warmup_us"]) == 2
        assert all(v > 0 for v in d["invoke_us"])
        # end-to-end includes the invoke it wraps
        assert all(e >= i for e, i in zip(d["e2e_us"], d["invoke_us"], strict=True))
        assert d["init_us"] > 0 and d["first_us"] > 0
        assert d["peak_rss_kb"] > 0 and d["sync_point"] == "invoke"
        out = np.load(tmp_path / "outputs" / d["eval"]["outputs_file"])
        assert out.shape == (n_eval, 10) and out.dtype == np.float32
        assert d["eval"]["n"] == n_eval
    # the two CPU paths compute the same function
    a, b = (np.load(tmp_path / "outputs" / got[c]["eval"]["outputs_file"]) for c in ("cpu", "xnn"))
    np.testing.assert_allclose(a, b, atol=1e-4)

    for cid in ("gpu", "nnapi", "custom"):
        d = got[cid]
        assert d["status"] == "unsupported", d
        assert d["reason"] and "\n" not in d["reason"]
        assert "invoke_us" not in d and "eval" not in d
    assert "NNAPI" in got["nnapi"]["reason"]
    assert "HarnessTestOp" in got["custom"]["reason"]
    assert got["random"]["status"] == "failed"
    assert got["random"]["reason"] and "\n" not in got["random"]["reason"]
    assert "invoke_us" not in got["random"]


def test_runner_script_rejects_an_unknown_job_schema(tmp_path):
    (tmp_path / "job.json").write_text(json.dumps({"schema": 99, "cells": []}))
    proc = subprocess.run(
        [sys.executable, RUNNER_PATH, tmp_path / "job.json"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    (doc,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert doc["type"] == "error" and "99" in doc["reason"]


def test_min_secs_extends_the_timed_runs(models, tmp_path):
    job = {
        "schema": 1,
        "cells": [{"id": "a", "model": str(models["int8"]), "delegate": "xnnpack", "threads": 1}],
        "runs": 3,
        "min_secs": 0.2,
        "warmup": 0,
        "eval": None,
        "outputs_dir": str(tmp_path),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [sys.executable, RUNNER_PATH, tmp_path / "job.json"], capture_output=True, text=True
    )
    cell = next(json.loads(ln) for ln in proc.stdout.splitlines() if '"cell"' in ln)
    assert cell["status"] == "ok" and cell["warmup_us"] == []
    assert len(cell["invoke_us"]) > 3  # a ~10 us model needs thousands of runs to fill 0.2 s


# ----------------------------------------------------------------------------- run_cells


def test_run_cells_on_the_local_device(models, digits, tmp_path):
    cells = [
        _job_cell("a", models["fp32"], "cpu"),
        _job_cell("b", models["dynamic"], "xnnpack", 2),
        _job_cell("c", models["fp16"], "gpu"),
        _job_cell("d", models["custom"], "xnnpack"),
        _job_cell("e", models["fp32"], "cpu", timing=False),
    ]
    results = list(run_cells(LocalDevice(tmp_path), cells, TIMING, digits / "eval.npz"))
    # each cell once; unsupported ones are reported as soon as round 1 says so
    assert sorted(c.id for c, _ in results) == ["a", "b", "c", "d", "e"]
    raw = {c.id: r for c, r in results}
    with np.load(digits / "eval.npz") as npz:
        y = npz["y"]
    for cid in ("a", "b"):
        assert raw[cid]["status"] == "ok", (cid, raw[cid].get("reason"))
        assert raw[cid]["env"]["runtime"] == "ai-edge-litert"
        assert top1_accuracy(raw[cid]["eval"]["outputs"], y) >= 0.9
    assert raw["c"]["status"] == raw["d"]["status"] == "unsupported"
    # an eval-only pass: outputs but no timing
    assert raw["e"]["status"] == "ok" and not raw["e"].get("invoke_us")
    np.testing.assert_array_equal(raw["e"]["eval"]["outputs"], raw["a"]["eval"]["outputs"])


def test_int8_io_is_quantised_in_and_dequantised_out(int8_io, digits, tmp_path):
    path = int8_io.manifest_path.parent / "int8.tflite"
    cells = [_job_cell("q", path, "cpu"), _job_cell("qx", path, "xnnpack")]
    results = dict(
        (c.id, r) for c, r in run_cells(LocalDevice(tmp_path), cells, TIMING, digits / "eval.npz")
    )
    with np.load(digits / "eval.npz") as npz:
        y = npz["y"]
    for r in results.values():
        assert r["status"] == "ok", r
        out = r["eval"]["outputs"]
        assert out.dtype == np.float32
        # dequantised softmax: probabilities, not int8 codes
        assert out.min() >= -0.01 and out.max() <= 1.01
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=0.1)
        assert top1_accuracy(out, y) >= 0.9


class _CrashingDevice(LocalDevice):
    """LocalDevice whose runner's worker really dies (os._exit) on models named crash*.

    The wrapper loads the real runner and patches make_engine; it also stands in for the
    runner file, so the supervisor starts it (not runner.py) as its worker process.
    """

    def __init__(self, workdir: Path):
        super().__init__(workdir)
        wrapper = workdir / "crashing_runner.py"
        wrapper.write_text(
            "import importlib.util, os, sys\n"
            f"spec = importlib.util.spec_from_file_location('runner', {str(RUNNER_PATH)!r})\n"
            "runner = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(runner)\n"
            "runner.__file__ = __file__  # the supervisor starts workers from __file__\n"
            "real = runner.make_engine\n"
            "def make_engine(runtime, model, delegate, threads, *rest):\n"
            "    if os.path.basename(model).startswith('crash'):\n"
            "        os._exit(134)\n"
            "    return real(runtime, model, delegate, threads, *rest)\n"
            "runner.make_engine = make_engine\n"
            "args = [a for a in sys.argv[1:] if not a.endswith('runner.py')]\n"
            "sys.exit(runner.main(args))\n"
        )
        self._python = workdir / "python"
        self._python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{wrapper}" "$@"\n')
        self._python.chmod(self._python.stat().st_mode | stat.S_IXUSR)
        self.starts = 0

    def python(self) -> str:
        return str(self._python)

    def stream(self, argv, timeout):
        self.starts += 1
        yield from super().stream(argv, timeout)


def test_a_worker_that_dies_costs_one_cell(models, tmp_path):
    crash = tmp_path / "crash.tflite"  # own content: devices stage models by sha256
    crash.write_bytes(with_custom_op(models["fp32"].read_bytes(), "CrashOp"))
    cells = [
        _job_cell("before", models["fp32"], "cpu"),
        _job_cell("boom", crash, "cpu"),
        _job_cell("after1", models["int8"], "xnnpack"),
        _job_cell("after2", models["fp16"], "cpu"),
    ]
    device = _CrashingDevice(tmp_path)
    results = list(run_cells(device, cells, TIMING, None))
    assert sorted(c.id for c, _ in results) == ["after1", "after2", "before", "boom"]
    raw = {c.id: r for c, r in results}
    assert raw["boom"]["status"] == "failed"
    assert "134" in raw["boom"]["reason"]
    for cid in ("before", "after1", "after2"):
        assert raw[cid]["status"] == "ok" and len(raw[cid]["invoke_us"]) == TIMING.runs
    # the crash cell left after round 1; the others ran every round
    assert device.starts == TIMING.rounds
    assert all(raw[c]["rounds"] == TIMING.rounds for c in ("before", "after1", "after2"))


class _CannedDevice(LocalDevice):
    """A device whose runner prints fixed lines (untrusted output, early exit)."""

    def __init__(self, workdir: Path, lines: list[str]):
        super().__init__(workdir)
        self.lines = lines
        self.returncode = -9

    def stream(self, argv, timeout):
        yield from self.lines


def test_untrusted_runner_lines_are_ignored_and_the_missing_cell_failed(models, tmp_path):
    cell = {"schema": 1, "type": "cell", "status": "ok", "invoke_us": [1.0]}
    lines = [
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
        "{not json\n",
        json.dumps({"schema": 2, "type": "cell", "id": "x"}) + "\n",  # another schema
        json.dumps({"schema": 1, "type": "hello", "env": {"runtime": "canned"}}) + "\n",
        json.dumps(cell | {"id": "nobody"}) + "\n",  # not a cell of this job
        json.dumps(cell | {"id": "x"}) + "\n",
        json.dumps(cell | {"id": "x"}) + "\n",  # a duplicate is not yielded twice
    ]
    cells = [_job_cell("x", models["fp32"], "cpu"), _job_cell("y", models["fp32"], "cpu")]
    device = _CannedDevice(tmp_path, lines)
    # the canned runner "dies" every time, so y fails after x and nothing loops forever
    results = list(run_cells(device, cells, replace(TIMING, rounds=1), None))
    assert [(c.id, r["status"]) for c, r in results] == [("x", "ok"), ("y", "failed")]
    assert results[0][1]["env"] == {"runtime": "canned"}
    assert "-9" in results[1][1]["reason"]


def test_local_device_facts_and_files(tmp_path):
    device = LocalDevice(tmp_path)
    assert device.workdir() == str(tmp_path)
    assert device.shell(["true"]).exit_code == 0
    res = device.shell(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert device.pull_bytes(str(tmp_path / "f"), 100) == b"x" * 100
    from harness.errors import DeviceError

    with pytest.raises(DeviceError):
        device.pull_bytes(str(tmp_path / "f"), 99)
    assert device.facts()["serial"] == "local"
    assert os.path.isabs(device.stage(Path("f"), "0" * 64, ".tflite"))
