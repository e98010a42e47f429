"""Plan expansion and the sweep: cells in, one stored record per cell out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.devices.local import LocalDevice
from harness.errors import HarnessError
from harness.lab.plan import expand, load_variants, parse_delegates, parse_threads
from harness.run import RunSpec, load_eval, plan_run, run_sweep
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store

TIMING = TimingConfig(runs=20, warmup=2, timeout_s=120)


def test_parse_threads_and_delegates():
    assert parse_threads("1,4, 2,4") == (1, 4, 2)
    assert parse_delegates("xnnpack, cpu,xnnpack") == ("xnnpack", "cpu")
    for bad in ("0", "-1", "a", "", "1.5"):
        with pytest.raises(HarnessError, match="threads"):
            parse_threads(bad)
    for bad in ("", "tpu", "cpu,GPU"):
        with pytest.raises(HarnessError, match="delegate"):
            parse_delegates(bad)


def test_plan_puts_the_drift_reference_first(variants):
    found = load_variants(variants.manifest_path.parent)
    assert [v.variant for v in found] == ["fp32", "fp16", "dynamic", "int8"]
    assert all(v.model == "digits" for v in found)
    cells = expand("local", found[::-1], ("xnnpack", "cpu"), (2, 1))
    assert len(cells) == 4 * 2 * 2 == len({c.key for c in cells})
    assert [(c.variant, c.delegate) for c in cells[:2]] == [("fp32", "cpu")] * 2
    only = load_variants(variants.manifest_path.parent, ("int8", "fp16"))
    assert [v.variant for v in only] == ["fp16", "int8"]


def test_a_variant_missing_from_disk_is_a_user_error(variants, tmp_path):
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(variants.manifest_path.parent, copy)
    (copy / "fp16.tflite").unlink()
    with pytest.raises(HarnessError, match="fp16.tflite"):
        load_variants(copy)


def test_run_spec_round_trips(digits):
    spec = RunSpec(
        Path("build/x"),
        "local",
        ("int8",),
        ("cpu", "nnapi"),
        (1, 4),
        TimingConfig(runs=7, min_secs=0.5, warmup=1),
        digits / "eval.npz",
    )
    assert RunSpec.from_dict(spec.to_dict()) == spec
    bare = RunSpec(Path("m.tflite"))
    assert RunSpec.from_dict(bare.to_dict()) == bare


def test_load_eval_checks_against_the_model_input(variants, digits, tmp_path):
    spec = variants.variants[0].info.inputs[0]
    data = load_eval(digits / "eval.npz", spec)
    assert data.x.shape[1:] == (8, 8, 1) and len(data.y) == len(data.x)
    np.savez(tmp_path / "nolabels.npz", x=data.x[:3])
    assert load_eval(tmp_path / "nolabels.npz", spec).y is None


def test_a_sweep_without_the_reference_cell_still_measures_drift(variants, digits, store_url):
    spec = RunSpec(
        variants.manifest_path.parent,
        variants=("int8", "dynamic"),
        delegates=("xnnpack",),
        timing=TIMING,
        eval_path=digits / "eval.npz",
    )
    seen = []
    store = Store(store_url)
    run_id = run_sweep(spec, store, LocalDevice(), on_cell=seen.append, command="test")
    records = store.cells(run_id)
    assert seen == records  # on_cell got each record as it was committed
    assert sorted(r.cell.variant for r in records) == ["dynamic", "int8"]  # no fp32 stored
    for r in records:
        assert r.status == "ok" and r.accuracy >= 0.9
        assert r.drift["max_abs"] > 0  # against an eval-only fp32/cpu pass
        assert 0 <= r.drift["top1_agreement"] <= 1
    run = store.get_run(run_id)
    assert run.status == "complete" and run.command == "test"
    assert RunSpec.from_dict(run.config) == spec
    assert len(records) == len(plan_run(spec)[1])


def test_an_interrupted_sweep_is_marked_and_keeps_what_it_stored(variants, store_url):
    spec = RunSpec(variants.manifest_path.parent, delegates=("cpu",), timing=TIMING)
    store = Store(store_url)

    def stop_after_two(record, seen=[]):  # noqa: B006 - a counter local to this test
        seen.append(record)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, LocalDevice(), on_cell=stop_after_two)
    (run,) = store.list_runs()
    assert run.status == "interrupted"
    assert len(store.cells(run.run_id)) == 2
    # resume measures exactly the rest
    run_sweep(spec, store, LocalDevice(), run_id=run.run_id)
    keys = [r.cell.key for r in store.cells(run.run_id)]
    assert len(keys) == len(set(keys)) == 4
    assert store.get_run(run.run_id).status == "complete"
