"""A lab night with one board whose Python cannot run the runner: only that board is lost.

Two loopback `serve-device` daemons; neither sets `ro.harness.python` by hand: one
presents its own interpreter (the default), the other `--python` a bare venv.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.adbd.server import AdbDaemon, DaemonConfig
from harness.lab.config import load_lab_config
from harness.lab.job import LabOptions, run_lab
from harness.store.store import Store

from .conftest import write_lab


@pytest.mark.slow
def test_a_board_without_a_runtime_is_lost_and_the_others_measured(variants, tmp_path, host_key):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    good = AdbDaemon(DaemonConfig(root=tmp_path / "good", authorized_keys=host_key))
    lacking = AdbDaemon(
        DaemonConfig(
            root=tmp_path / "lacking", authorized_keys=host_key, python=str(bare / "bin" / "python")
        )
    )
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    with good, lacking:
        path = write_lab(
            tmp_path,
            f'name = "t"\nstore = "{url}"\n'
            f'devices = ["{good.serial}", "{lacking.serial}"]\n'
            'delegates = ["cpu", "xnnpack"]\n'
            "[timing]\nruns = 4\nwarmup = 1\nrounds = 1\n"
            f'[[models]]\nsource = "{variants.manifest_path.parent}"\nvariants = ["fp32"]\n',
        )
        outcome = run_lab(load_lab_config(path), LabOptions(night="n1", out_dir=tmp_path / "o"))
    result = outcome.result
    assert result.exit_code == 1  # a lost cell is a failure of the night, not of the lab
    by_device = {d.serial: d for d in result.devices}
    assert by_device[good.serial].lost is None
    why = by_device[lacking.serial].lost
    assert why.startswith("device unusable: ") and "lacks numpy and a TFLite runtime" in why
    statuses = {(c.cell.device, c.cell.delegate): c.status for c in result.cells}
    assert statuses == {
        (good.serial, "cpu"): "ok",
        (good.serial, "xnnpack"): "ok",
        (lacking.serial, "cpu"): "lost",
        (lacking.serial, "xnnpack"): "lost",
    }
    store = Store(url)
    stored = [
        r.cell.device for run in store.find_runs(tag="lab:t:n1") for r in store.cells(run.run_id)
    ]
    assert sorted(stored) == [good.serial, good.serial]  # nothing stored for the lacking board
