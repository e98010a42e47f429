"""A lab model whose file changed since the baseline night is measured beside the
baseline's file in the same run, and judged round by round (paired)."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import harness

from harness.store.store import Store

from .conftest import write_lab


def _lab(tmp_path, model, url):
    return write_lab(
        tmp_path,
        f"""
        name = "ab"
        store = "{url}"
        devices = ["local"]
        delegates = ["cpu", "xnnpack"]
        [timing]
        runs = 30
        warmup = 1
        rounds = 4
        [[models]]
        source = "{model}"
        """,
    )


def _night(lab, night, out):
    proc = harness("lab", "run", lab, "--night", night, "--out", out / night)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads((out / night / "summary.json").read_text())


@pytest.mark.slow
def test_a_changed_model_file_is_measured_beside_the_baselines(variants, tmp_path):
    """Night 1: digits fp32. Night 2: the file is replaced by the fp16 variant: the night
    sweeps the archived night-1 file beside it and judges it paired. Night 3: same file
    as night 2: judged across nights again."""
    model_dir = variants.manifest_path.parent
    model = tmp_path / "digits.tflite"
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    lab = _lab(tmp_path, model, url)
    out = tmp_path / "nights"

    shutil.copy(model_dir / "fp32.tflite", model)
    first = _night(lab, "n1", out)
    assert first["notes"] == []

    shutil.copy(model_dir / "fp16.tflite", model)
    second = _night(lab, "n2", out)
    (note,) = second["notes"]
    assert "digits: model file changed since the baseline night (fp32)" in note
    assert "measured beside the baseline's file (paired)" in note
    cells = [c for c in second["cells"] if c["status"] == "ok"]
    assert {c["model"] for c in second["cells"]} == {"digits"}  # the twin is not planned
    assert len(cells) == 2 and all(c["note"].startswith("paired:") for c in cells)
    assert all(c["verdict"] in ("same", "faster", "slower", "inconclusive") for c in cells)
    store = Store(url)
    (run,) = store.find_runs(tag="lab:ab:n2")
    held = {(r.cell.model, r.cell.delegate): r for r in store.cells(run.run_id)}
    twin = held[("digits@baseline", "cpu")]
    assert twin.model_sha256 == first_sha(store) != held[("digits", "cpu")].model_sha256
    # both models ran in the same rounds: one runner process per round for both
    assert twin.extra["round_sizes"] == held[("digits", "cpu")].extra["round_sizes"]
    md = (out / "n2" / "summary.md").read_text()
    assert "- digits: model file changed since the baseline night" in md

    third = _night(lab, "n3", out)
    assert third["notes"] == []
    assert not any((c["note"] or "").startswith("paired:") for c in third["cells"])


def first_sha(store: Store) -> str:
    (run,) = store.find_runs(tag="lab:ab:n1")
    return store.cells(run.run_id)[0].model_sha256


@pytest.mark.slow
def test_a_baseline_file_that_was_not_archived_is_said_so(variants, tmp_path):
    model_dir = variants.manifest_path.parent
    model = tmp_path / "digits.tflite"
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    lab = _lab(tmp_path, model, url)
    out = tmp_path / "nights"
    shutil.copy(model_dir / "fp32.tflite", model)
    _night(lab, "n1", out)
    shutil.rmtree(tmp_path / ".harness-lab" / "ab" / "archive")  # a night before archiving
    shutil.copy(model_dir / "fp16.tflite", model)
    second = _night(lab, "n2", out)
    (note,) = second["notes"]
    assert "not archived: compared across nights" in note
    assert all(c["model"] == "digits" for c in second["cells"])
