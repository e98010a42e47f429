"""`sustained` and `energy` in the lab: a real night on the host with a fake sysfs (CPU
frequencies and heat in every 1 s window, the summary naming the cell), judged only
against nights measured the same way; and energy through the lab on the stand-in phone
(tests/android), whose fake battery gives the phone's cells mJ per inference while the
host, which has no battery to read, keeps its unsupported rows."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from android.test_end_to_end import _battery, phone  # noqa: F401 - phone is a fixture
from cli_helpers import harness

from harness.store.store import Store

from .conftest import write_lab


def _fake_sysfs(root: Path, freqs: tuple[int, ...], temps: tuple[int, ...]) -> Path:
    """The tree tests/test_sustained.py builds: per-core cpufreq and thermal zones."""
    for i, f in enumerate(freqs):
        d = root / f"devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{f}\n")
    for i, t in enumerate(temps):
        d = root / f"class/thermal/thermal_zone{i}"
        d.mkdir(parents=True)
        (d / "temp").write_text(f"{t}\n")
    return root


def _lab(tmp_path: Path, url: str, source: Path, extra: str, name: str) -> Path:
    return write_lab(
        tmp_path,
        f"""
        name = "soak"
        store = "{url}"
        devices = ["local"]
        delegates = ["xnnpack"]
        {extra}
        [timing]
        runs = 20
        warmup = 1
        rounds = 3
        [[models]]
        source = "{source}"
        variants = ["int8"]
        """,
        name,
    )


@pytest.mark.slow
def test_a_sustained_night_stores_the_windows_and_meets_only_sustained_nights(variants, tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    source = variants.manifest_path.parent
    env = os.environ | {
        "HARNESS_SYSFS": str(_fake_sysfs(tmp_path / "sys", (1200000, 1800000), (45000, 51500)))
    }
    soak = _lab(tmp_path, url, source, 'sustained = "10s"', "soak.toml")
    out = tmp_path / "nights"
    proc = harness("lab", "run", soak, "--night", "n1", "--out", out / "n1", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr

    store = Store(url)
    (run,) = store.find_runs(tag="lab:soak:n1")
    assert run.config["sustained_s"] == 10.0 and run.config["timing"]["rounds"] == 1
    assert run.config["timing"]["cell_timeout_s"] >= 130.0  # sustained + 120 s
    (record,) = store.cells(run.run_id)
    assert record.status == "ok", record.reason
    s = record.extra["sustained"]
    assert 9 <= len(s["windows"]) <= 11 and s["missing"] == []
    assert all(w["freq_khz"] == [1200000, 1800000] and w["temp_c"] == 51.5 for w in s["windows"])
    # the cell's latency is its pooled windows, not [timing]'s 20 runs in 3 rounds
    assert record.latency.n == sum(w["kept"] for w in s["windows"]) > 20

    summary = out / "n1" / "summary.md"
    text = summary.read_text()
    assert "int8/xnnpack/t1" in text and "sustained 10 s" in text
    doc = json.loads((out / "n1" / "summary.json").read_text())
    (cell,) = doc["cells"]
    assert cell["status"] == "ok" and cell["median_us"] == pytest.approx(record.latency.center)
    assert 'name="int8/xnnpack/t1"' in (out / "n1" / "junit.xml").read_text()

    # a night of ordinary rounds after it: its baseline night was sustained (a hot
    # device's pooled windows), so the cell is not compared with it, and the summary says so
    plain = _lab(tmp_path, url, source, "", "plain.toml")
    proc = harness("lab", "run", plain, "--night", "n2", "--out", out / "n2", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "n2" / "summary.json").read_text())
    assert doc["baseline"]["label"] == "n1"
    (cell,) = doc["cells"]
    assert cell["status"] == "ok" and cell["verdict"] is None and cell["change"] is None
    assert any("measured otherwise" in n for n in doc["notes"]), doc["notes"]


@pytest.mark.slow
def test_energy_through_the_lab_on_the_stand_in_phone(phone, variants, tmp_path):  # noqa: F811
    sysfs = Path(os.environ["HARNESS_SYSFS"])  # the phone fixture's fake tree
    _battery(sysfs, "Discharging", 125_000)  # 0.5 W idle
    stop = threading.Event()

    def raise_load_when_busy() -> None:  # 2 W while benchmark_model's timed pass runs
        while not stop.is_set():
            busy = list(phone["root"].rglob("energy-busy-*.txt"))
            _battery(sysfs, "Discharging", 500_000 if busy else 125_000)
            time.sleep(0.01)

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    lab = write_lab(
        tmp_path,
        f"""
        name = "power"
        store = "{url}"
        devices = ["{phone["serial"]}", "local"]
        delegates = ["xnnpack"]
        energy = true
        [timing]
        runs = 400
        min_secs = 1
        warmup = 1
        rounds = 1
        [[models]]
        source = "{variants.manifest_path.parent}"
        variants = ["int8"]
        """,
    )
    watcher = threading.Thread(target=raise_load_when_busy, daemon=True)
    watcher.start()
    try:
        proc = harness("lab", "run", lab, "--night", "n1", "--out", tmp_path / "out")
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    store = Store(url)
    records = {
        run.config["device"]: store.cells(run.run_id) for run in store.find_runs(tag="lab:power:n1")
    }
    assert all(run.config["runner_options"]["energy"] for run in store.find_runs())
    (on_phone,) = records[phone["serial"]]
    assert on_phone.status == "ok", on_phone.reason
    e = on_phone.extra["energy"]
    assert e["meaningful"] and e["mj_per_inference"] > 0 and e["idle_w"] == pytest.approx(0.5, 0.05)
    # the host has no battery the Python runner samples: its row is kept, with the reason
    (on_host,) = records["local"]
    assert on_host.status == "unsupported" and "--energy" in on_host.reason
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    by_device = {c["device"]: c for c in doc["cells"]}
    assert by_device[phone["serial"]]["status"] == "ok"
    host = by_device["local"]
    assert (host["status"], host["outcome"]) == ("unsupported", "skipped")
