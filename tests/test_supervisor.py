"""Interleaved rounds and the on-device supervisor: hung and killed cells cost one cell."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.devices.local import LocalDevice
from harness.runners.python_runner import JobCell, TimingConfig, merge_rounds, run_cells


def _cell(cid: str, path: Path, sha: str = "0" * 64, delegate: str = "cpu") -> JobCell:
    return JobCell(cid, path, sha, delegate, 1)


@pytest.fixture
def fp32(variants):
    v = next(v for v in variants.variants if v.name == "fp32")
    return variants.manifest_path.parent / v.file, v.info.sha256


@pytest.fixture
def fifo(tmp_path) -> Path:
    """Opening a FIFO with no writer blocks in native code: a genuinely hung cell."""
    path = tmp_path / "hangs.tflite"
    os.mkfifo(path)
    return path


def test_a_hung_cell_is_killed_and_only_it_fails(fp32, fifo, tmp_path):
    model, sha = fp32
    cells = [_cell("a", model, sha), _cell("h", fifo), _cell("b", model, sha, "xnnpack")]
    timing = TimingConfig(runs=4, warmup=0, rounds=2, cell_timeout_s=2)
    results = {
        c.id: doc for c, doc in run_cells(LocalDevice(tmp_path / "dev"), cells, timing, None)
    }
    assert results["h"]["status"] == "failed"
    assert "timed out after 2 s" in results["h"]["reason"]
    assert results["a"]["status"] == results["b"]["status"] == "ok"
    # The hung cell left the sweep after round 1; the others ran both rounds.
    assert results["a"]["rounds"] == results["b"]["rounds"] == 2
    assert len(results["a"]["invoke_us"]) == 4


def _kill_worker_when_hung(root: Path) -> None:
    """Find the worker process whose job lives under `root` and SIGKILL it (an OOM kill)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if b"--worker" in cmd and cwd == str(root):
                time.sleep(0.5)  # let it reach the hung cell
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.05)


def test_a_killed_worker_fails_its_cell_and_a_new_worker_takes_the_rest(fp32, fifo, tmp_path):
    model, sha = fp32
    root = tmp_path / "dev"
    root.mkdir()
    cells = [_cell("h", fifo), _cell("a", model, sha)]
    timing = TimingConfig(runs=3, warmup=0, rounds=1, cell_timeout_s=60)
    killer = threading.Thread(target=_kill_worker_when_hung, args=(root,))
    killer.start()
    results = {c.id: doc for c, doc in run_cells(LocalDevice(root), cells, timing, None)}
    killer.join()
    assert results["h"]["status"] == "failed"
    assert "SIGKILL" in results["h"]["reason"]
    assert results["a"]["status"] == "ok"


def test_rounds_are_interleaved_across_cells(fp32, tmp_path):
    model, sha = fp32
    device = LocalDevice(tmp_path / "dev")
    cells = [_cell("a", model, sha), _cell("b", model, sha, "xnnpack")]
    timing = TimingConfig(runs=6, warmup=1, rounds=3)
    results = dict((c.id, d) for c, d in run_cells(device, cells, timing, None))
    jobs = sorted(p.name for p in (tmp_path / "dev").glob("job-*.json"))
    assert jobs == ["job-r0-1.json", "job-r1-1.json", "job-r2-1.json"]  # one runner per round
    for doc in results.values():
        assert doc["rounds"] == 3
        assert len(doc["invoke_us"]) == 6 and len(doc["warmup_us"]) == 3
        assert len(doc["init_us_rounds"]) == 3


def test_merge_rounds_concatenates_samples_and_takes_median_init():
    docs = [
        {
            "status": "ok",
            "invoke_us": [1, 2],
            "e2e_us": [3],
            "init_us": 10.0,
            "first_us": 5,
            "peak_rss_kb": 100,
        },
        {
            "status": "ok",
            "invoke_us": [3],
            "e2e_us": [4],
            "init_us": 30.0,
            "first_us": 7,
            "peak_rss_kb": 300,
            "eval": {"n": 1},
        },
        {
            "status": "ok",
            "invoke_us": [4],
            "e2e_us": [5],
            "init_us": 20.0,
            "first_us": 6,
            "peak_rss_kb": 200,
        },
    ]
    merged = merge_rounds(docs)
    assert merged["invoke_us"] == [1, 2, 3, 4]
    assert merged["init_us"] == 20.0 and merged["init_us_rounds"] == [10.0, 30.0, 20.0]
    assert merged["first_us"] == 6
    assert merged["peak_rss_kb"] == 300
    assert merged["rounds"] == 3
    assert "eval" not in merged  # outputs come from the last round only


def test_per_round_splits_runs_and_seconds():
    t = TimingConfig(runs=100, min_secs=3.0, rounds=3)
    assert [t.per_round(r).runs for r in range(3)] == [34, 33, 33]
    assert t.per_round(2).min_secs == pytest.approx(1.0)
    few = TimingConfig(runs=2, rounds=3)  # fewer runs than rounds: one run per round
    assert few.round_count() == 2 and [few.per_round(r).runs for r in range(2)] == [1, 1]


def test_a_resumed_cell_runs_only_its_missing_rounds(fp32, tmp_path):
    """Rounds 0 and 1 done before a crash: the resume runs round 2 alone and merges."""
    model, sha = fp32
    timing = TimingConfig(runs=6, warmup=0, rounds=3)
    kept: list[tuple[str, int]] = []
    first = run_cells(
        LocalDevice(tmp_path / "dev"),
        [_cell("a", model, sha), _cell("b", model, sha, "xnnpack")],
        timing,
        None,
        on_round=lambda c, r, doc: kept.append((c.id, r)),
    )
    full = {c.id: doc for c, doc in first}
    assert sorted(kept) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]  # never the last round
    assert full["a"]["rounds"] == 3

    earlier = [{"invoke_us": [1.0, 2.0], "e2e_us": [3.0, 4.0], "init_us": 7.0, "status": "ok"}]
    earlier.append(dict(earlier[0], init_us=9.0))
    root = tmp_path / "resumed"
    resumed = {
        c.id: d
        for c, d in run_cells(
            LocalDevice(root),
            [_cell("a", model, sha)],
            timing,
            None,
            done_rounds={"a": earlier},
            on_round=lambda *_: pytest.fail("the last round is not kept as a part"),
        )
    }
    doc = resumed["a"]
    assert doc["status"] == "ok" and doc["rounds"] == 3
    assert doc["invoke_us"][:4] == [1.0, 2.0, 1.0, 2.0] and len(doc["invoke_us"]) == 6
    assert doc["init_us_rounds"][:2] == [7.0, 9.0]
    assert [p.name for p in sorted(root.glob("job-*.json"))] == ["job-r2-1.json"]
