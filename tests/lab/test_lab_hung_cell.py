"""`harness lab run` over loopback boards where one board's cell hangs.

The hang is real and on the board: in board 1's workdir the file a cell saves its eval
outputs to (outputs/<cell id>.npy) is a FIFO with no reader, so the runner's worker
blocks in open(2) mid-cell, in the kernel, the way a process stuck on bad storage does.
Nothing on the host is patched: the lab job, its executor, the worker, run_sweep, the
push over ADB and the on-device supervisor all run as in a real night, and only the
supervisor's `cell_timeout_s` gets the board going again.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from cli_helpers import harness

from harness.devices.remote import WORKDIR
from harness.store.store import Store

from .conftest import write_lab

CELL_TIMEOUT_S = 3


def _stored(store: Store, tag: str) -> Counter:
    """Cell key -> how many records the night holds (must be 1 each, never 2)."""
    return Counter(r.cell.key for run in store.find_runs(tag=tag) for r in store.cells(run.run_id))


@pytest.mark.slow
def _hung_lab(tmp_path, boards, variants, digits, cell_timeout_s: float):
    """A lab over the boards, digits fp32 + int8 with eval, where board 1's fp32/xnnpack
    cell will hang. Returns (lab file, store url, the hung board's serial)."""
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    device_list = ", ".join(f'"{s}"' for s in boards.serials)
    path = write_lab(
        tmp_path,
        f"""
        name = "t"
        store = "{url}"
        devices = [{device_list}]
        delegates = ["cpu", "xnnpack"]

        [timing]
        runs = 5
        warmup = 1
        rounds = 2
        cell_timeout_s = {cell_timeout_s}

        [[models]]
        source = "{variants.manifest_path.parent}"
        variants = ["fp32", "int8"]
        eval = "{digits / "eval.npz"}"
        """,
    )
    # Cells run as c0 fp32/cpu, c1 fp32/xnnpack, c2 int8/cpu, c3 int8/xnnpack (fp32/cpu
    # first, see harness.lab.plan.expand); the eval pass is in the last round. So board
    # 1's fp32/xnnpack hangs in round 2, after its round-1 samples, with cells after it.
    outputs = tmp_path / "board1" / WORKDIR.lstrip("/") / "outputs"
    outputs.mkdir(parents=True)
    os.mkfifo(outputs / "c1.npy")
    return path, url, boards.serials[1]


def test_a_hung_cell_is_killed_on_its_board_and_the_night_goes_on(
    boards, variants, digits, tmp_path, monkeypatch
):
    path, url, victim = _hung_lab(tmp_path, boards, variants, digits, CELL_TIMEOUT_S)
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = harness("lab", "run", path, "--night", "n1", "--out", out, "--json", timeout=240)
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr  # a failed cell, not a lab failure
    cells = json.loads(proc.stdout)["cells"]
    assert len(cells) == 3 * 2 * 2  # boards x (fp32, int8) x (cpu, xnnpack)

    (hung,) = [c for c in cells if c["status"] != "ok"]
    assert (hung["device"], hung["variant"], hung["delegate"]) == (victim, "fp32", "xnnpack")
    assert hung["status"] == "failed" and hung["outcome"] == "failure"
    assert f"timed out after {CELL_TIMEOUT_S} s (killed on the device)" in hung["reason"]
    ok = [c for c in cells if c is not hung]
    assert all(c["median_us"] and c["accuracy"] >= 0.9 for c in ok)
    assert Counter(c["device"] for c in ok) == {s: 4 - (s == victim) for s in boards.serials}

    # Stored: the hung cell as a failed record with its reason, every cell exactly once.
    store = Store(url)
    counts = _stored(store, "lab:t:n1")
    assert len(counts) == 12 and set(counts.values()) == {1}
    records = [r for run in store.find_runs(tag="lab:t:n1") for r in store.cells(run.run_id)]
    (failed,) = [r for r in records if r.status != "ok"]
    assert failed.cell.device == victim and failed.status == "failed"
    assert "timed out" in failed.reason

    # The summaries show it: JSON, JUnit (one failing test case), Markdown.
    doc = json.loads((out / "summary.json").read_text())
    assert doc["counts"]["failure"] == 1 and doc["counts"]["passed"] == 11
    junit = ET.parse(out / "junit.xml").getroot()
    (failure,) = junit.findall(".//failure")
    (case,) = [c for c in junit.iter("testcase") if c.find("failure") is not None]
    assert case.get("classname") == f"lab.t.{victim}.digits"
    assert case.get("name") == "fp32/xnnpack/t1"
    assert failure.get("type") == "failed" and "timed out" in failure.get("message")
    (suite,) = [s for s in junit.iter("testsuite") if s.get("name") == f"t.{victim}"]
    assert suite.get("failures") == "1" and suite.get("tests") == "4"
    assert "timed out" in (out / "summary.md").read_text()

    # The hang cost about one cell timeout on one board, not the night's run timeout.
    assert took < 120, f"lab run took {took:.0f} s"

    # A hung cell is the cell's own failure: --resume keeps it and measures nothing twice.
    again = harness("lab", "run", path, "--night", "n1", "--resume", "--out", tmp_path / "o2")
    assert again.returncode == 1, again.stderr
    assert _stored(Store(url), "lab:t:n1") == counts


@pytest.mark.slow
def test_a_hung_cell_longer_than_the_adb_read_timeout_is_still_a_timed_out_cell(
    boards, variants, digits, tmp_path
):
    # host_key sets HARNESS_ADB_TIMEOUT=2; the cell timeout is longer, as with the
    # defaults: the supervisor's heartbeats keep the quiet board from looking dropped.
    path, url, victim = _hung_lab(tmp_path, boards, variants, digits, 3)
    proc = harness("lab", "run", path, "--night", "n1", "--out", tmp_path / "o", "--json")
    assert proc.returncode == 1, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    bad = [(c["device"], c["variant"], c["delegate"]) for c in cells if c["status"] != "ok"]
    assert bad == [(victim, "fp32", "xnnpack")]
    (hung,) = [c for c in cells if c["status"] != "ok"]
    assert "timed out after 3 s" in hung["reason"]
    assert set(_stored(Store(url), "lab:t:n1").values()) == {1}
