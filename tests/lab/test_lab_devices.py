"""`harness lab run` end to end: loopback `serve-device` boards, the digits variants, a store.

Each board is the project's ADB daemon in this process (RSA auth, its own root), so a
test can stop one mid-sweep and bring it back on the same port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from cli_helpers import harness

from harness.lab.config import load_lab_config
from harness.lab.job import LabOptions, run_lab
from harness.store.store import Store

from .conftest import write_lab

TIMING = """
[timing]
runs = 5
warmup = 1
rounds = 1
cell_timeout_s = 120
"""


def _lab(tmp_path, devices, models, store_url, extra="") -> object:
    device_list = ", ".join(f'"{d}"' for d in devices)
    body = (
        f'name = "t"\nstore = "{store_url}"\ndevices = [{device_list}]\n'
        f'delegates = ["cpu", "xnnpack", "nnapi"]\n{extra}{TIMING}'
    )
    for m in models:
        body += "\n[[models]]\n" + "".join(f'{k} = "{v}"\n' for k, v in m.items())
    return write_lab(tmp_path, body)


def _stored(store: Store, tag: str) -> Counter:
    """(device, cell key) -> how many records the night holds (1 each, never 2)."""
    return Counter(r.cell.key for run in store.find_runs(tag=tag) for r in store.cells(run.run_id))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_three_boards_every_cell_measured_once(
    boards, variants, digits, tmp_path, backend, request
):
    url = (
        f"sqlite:///{tmp_path / 'lab.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    model = {"source": variants.manifest_path.parent, "eval": digits / "eval.npz"}
    path = _lab(tmp_path, boards.serials, [model], url)
    out = tmp_path / "out"
    proc = harness("lab", "run", path, "--night", "n1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "summary.json").read_text())
    measured = [c for c in doc["cells"] if c["status"] == "ok"]
    assert len(measured) == 3 * 4 * 2  # boards x variants x (cpu, xnnpack)
    assert all(c["accuracy"] >= 0.9 for c in measured)
    filtered = [c for c in doc["cells"] if c["status"] == "filtered"]
    assert len(filtered) == 3 * 4 and {c["delegate"] for c in filtered} == {"nnapi"}
    counts = _stored(Store(url), "lab:t:n1")
    assert len(counts) == 24 and set(counts.values()) == {1}
    junit = ET.parse(out / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == 36
    assert len(junit.findall(".//skipped")) == 12 and not junit.findall(".//failure")
    assert "| ok |" in (out / "summary.md").read_text()  # the devices table
    again = harness("lab", "run", path, "--night", "n1", "--out", out)
    assert again.returncode == 2 and "--resume" in again.stderr  # a night is not run twice


@pytest.mark.slow
def test_a_board_lost_mid_sweep_is_finished_by_resume(boards, variants, digits, tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    twin = tmp_path / "twin.keras"  # a second model: same network, its own name
    shutil.copy(digits / "digits.keras", twin)
    models = [
        {"source": variants.manifest_path.parent, "eval": digits / "eval.npz"},
        {"source": twin, "variants": "fp32", "calibration": digits / "calibration.npz"},
    ]
    path = _lab(tmp_path, boards.serials, models, url)
    path.write_text(path.read_text().replace('variants = "fp32"', 'variants = ["fp32", "int8"]'))
    victim = boards.serials[0]
    stopped = threading.Event()

    def progress(line: str) -> None:  # the first cell of the victim is stored: pull its plug
        if line.startswith(victim + " ") and not stopped.is_set():
            stopped.set()
            boards.stop(0)

    config = load_lab_config(path)
    first = run_lab(config, LabOptions(night="n1", out_dir=tmp_path / "o1"), progress)
    assert stopped.is_set()
    result = first.result
    assert result.exit_code == 1
    (lost_dev,) = [d for d in result.devices if d.lost]
    assert lost_dev.serial == victim and "lost" in lost_dev.lost
    lost = [c for c in result.cells if c.status == "lost"]
    assert lost and all(c.cell.device == victim for c in lost)
    planned = {c.cell.key for c in result.cells if c.status != "filtered"}
    before = _stored(Store(url), "lab:t:n1")
    assert set(before.values()) == {1} and len(before) < len(planned)

    boards.restart(0)  # same port, same root
    proc = harness(
        "lab", "run", path, "--night", "n1", "--resume", "--out", tmp_path / "o2", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {c["status"] for c in doc["cells"]} == {"ok", "filtered"}
    after = _stored(Store(url), "lab:t:n1")
    assert set(after) == planned and set(after.values()) == {1}  # none lost, none doubled
    runs = Store(url).find_runs(tag="lab:t:n1")
    assert len(runs) == 3 * 2 and {r.status for r in runs} == {"complete"}


def test_a_corrupt_model_fails_its_cells_and_the_others_are_measured(variants, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"this is not a zip archive")
    models = [
        {"source": variants.manifest_path.parent, "variants": "fp32"},
        {"source": bad, "variants": "fp32"},
    ]
    path = _lab(tmp_path, ["local"], models, f"sqlite:///{tmp_path / 'lab.db'}")
    path.write_text(path.read_text().replace('variants = "fp32"', 'variants = ["fp32"]'))
    proc = harness("lab", "run", path, "--night", "n1", "--out", tmp_path / "o", "--json")
    assert proc.returncode == 1, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    broken = [c for c in cells if c["model"] == "broken"]
    assert {(c["status"], c["delegate"]) for c in broken} == {
        ("failed", "cpu"),
        ("failed", "xnnpack"),
        ("filtered", "nnapi"),
    }
    assert all("not a Keras archive" in c["reason"] for c in broken if c["status"] == "failed")
    good = [c for c in cells if c["model"] == "digits" and c["status"] != "filtered"]
    assert len(good) == 2 and {c["status"] for c in good} == {"ok"}
    failures = ET.parse(tmp_path / "o" / "junit.xml").getroot().findall(".//failure")
    assert len(failures) == 2


def test_unreachable_devices_are_failed_cells_or_a_lab_failure(variants, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens once it closes
    model = [{"source": variants.manifest_path.parent, "variants": "fp32"}]
    fix = 'variants = ["fp32"]'
    path = _lab(tmp_path, ["local", dead], model, f"sqlite:///{tmp_path / 'a.db'}")
    path.write_text(path.read_text().replace('variants = "fp32"', fix))
    proc = harness("lab", "run", path, "--night", "n1", "--out", tmp_path / "o", "--json")
    assert proc.returncode == 1, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    gone = [c for c in cells if c["device"] == dead]
    assert gone and {c["status"] for c in gone} == {"lost"}
    assert all("unreachable" in c["reason"] and "refused" in c["reason"] for c in gone)
    only_dead = _lab(tmp_path, [dead], model, f"sqlite:///{tmp_path / 'b.db'}")
    only_dead.write_text(only_dead.read_text().replace('variants = "fp32"', fix))
    proc = harness("lab", "run", only_dead, "--night", "n1", "--out", tmp_path / "o2")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("harness: error: every device")


@pytest.mark.slow
def test_ray_runs_each_device_queue_where_its_device_is(boards, variants, digits, tmp_path):
    ray = (
        pytest.importorskip("ray")
        if os.environ.get("HARNESS_REQUIRE_ALL") != "1"
        else (__import__("ray"))
    )
    from harness.lab.executors import device_resource

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    model = {"source": variants.manifest_path.parent, "eval": digits / "eval.npz"}
    path = _lab(tmp_path, [*boards.serials[:2], "127.0.0.1:1"], [model], url)
    config = load_lab_config(path)
    offered = {device_resource(s): 1 for s in boards.serials[:2]}  # no node has the third
    ray.init(num_cpus=2, resources=offered, include_dashboard=False, log_to_driver=False)
    try:
        done = run_lab(config, LabOptions(night="n1", executor="ray", out_dir=tmp_path / "o"))
    finally:
        ray.shutdown()
    result = done.result
    by_device = Counter((c.cell.device, c.status) for c in result.cells)
    for serial in boards.serials[:2]:
        assert by_device[(serial, "ok")] == 8
    (missing,) = [d for d in result.devices if not d.reachable]
    assert "no Ray node offers" in missing.lost
    assert set(_stored(Store(url), "lab:t:n1").values()) == {1}
