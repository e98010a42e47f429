"""Batch and concurrency in the lab: the night sweeps them like threads, stores them,
names them in the summary, and judges each cell only against its own batch and
concurrency on the baseline night."""

from __future__ import annotations

import json

import pytest
from cli_helpers import harness

from harness.store.store import Store

from .conftest import write_lab


@pytest.mark.slow
def test_a_night_sweeps_batch_and_concurrency_and_judges_like_with_like(variants, tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    lab = write_lab(
        tmp_path,
        f"""
        name = "load"
        store = "{url}"
        devices = ["local"]
        delegates = ["xnnpack"]
        batch = [1, 4]
        concurrency = [1, 2]
        [timing]
        runs = 20
        warmup = 1
        rounds = 3
        min_secs = 0.6
        [[models]]
        source = "{variants.manifest_path.parent}"
        variants = ["fp32"]
        """,
    )
    out = tmp_path / "nights"
    nights = {}
    for night in ("n1", "n2"):
        proc = harness("lab", "run", lab, "--night", night, "--out", out / night)
        assert proc.returncode in (0, 1), proc.stderr
        nights[night] = json.loads((out / night / "summary.json").read_text())
    cells = nights["n2"]["cells"]
    grid = {(c["batch"], c["concurrency"]) for c in cells}
    assert grid == {(1, 1), (1, 2), (4, 1), (4, 2)}
    assert all(c["status"] == "ok" for c in cells), [c["reason"] for c in cells]
    # night 2 is judged against night 1 cell by cell: every cell found its own baseline
    # (load cells are judged on throughput too: a noisy host may make it decisive)
    judged = ("same", "faster", "slower", "inconclusive", "throughput down")
    assert all(c["verdict"] in judged for c in cells)
    store = Store(url)
    (run,) = store.find_runs(tag="lab:load:n2")
    records = store.cells(run.run_id)
    assert all(r.extra.get("load") for r in records)  # `concurrency` given: load windows
    assert {r.cell.batch for r in records if r.throughput_sps} == {1, 4}
    assert "b4" in (out / "n2" / "summary.md").read_text()
