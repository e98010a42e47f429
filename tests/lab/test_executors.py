"""Executor pieces that need no device: Ray resource names, model files moved with a task."""

from __future__ import annotations

from pathlib import Path

from harness.lab.config import DeviceEntry, ModelEntry
from harness.lab.executors import _bundle, _materialise, device_resource
from harness.lab.prepare import PreparedModel
from harness.lab.worker import DeviceTask
from harness.run import RunSpec


def _task(model_dir: Path, eval_path: Path) -> DeviceTask:
    entry = ModelEntry("m", model_dir, None, None, eval_path)
    spec = RunSpec(model_dir, "", eval_path=eval_path)
    return DeviceTask(
        DeviceEntry("127.0.0.1:5601"),
        (PreparedModel(entry, spec),),
        ("cpu",),
        (1,),
        "lab:t:n1",
        {},
        "sqlite://",
    )


def test_model_files_travel_with_the_task(tmp_path, monkeypatch):
    src = tmp_path / "host"
    (src / "m").mkdir(parents=True)
    (src / "m" / "manifest.json").write_text("{}")
    (src / "m" / "fp32.tflite").write_bytes(b"\x01" * 10)
    (src / "eval.npz").write_bytes(b"npz")
    task = _task(src / "m", src / "eval.npz")
    bundle = _bundle(task)
    assert set(bundle) == {
        str(src / "m" / "manifest.json"),
        str(src / "m" / "fp32.tflite"),
        str(src / "eval.npz"),
    }
    assert _materialise(task, bundle) is task  # same host: files used where they are
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "worker-cache"))
    (src / "m" / "fp32.tflite").write_bytes(b"changed")  # "another host": not the same file
    moved = _materialise(task, bundle)
    spec = moved.models[0].spec
    assert str(spec.model).startswith(str(tmp_path / "worker-cache"))
    assert (spec.model / "fp32.tflite").read_bytes() == b"\x01" * 10
    assert spec.eval_path.read_bytes() == b"npz"


def test_device_resource_names():
    assert device_resource("127.0.0.1:5601") == "harness-device:127.0.0.1:5601"
