"""Nights in the store (SQLite and PostgreSQL): baselines, verdicts, and the history."""

from __future__ import annotations

import json

import pytest
from cli_helpers import harness

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.lab.capabilities import Capabilities
from harness.lab.history import load_history
from harness.lab.night import judge_night, resolve_baseline
from harness.lab.worker import DeviceOutcome, ModelOutcome
from harness.measure.compare import CompareConfig
from harness.store.store import Store

from .conftest import record

DEV = "127.0.0.1:5601"
PREFIX = "lab:nightly:"


def _night(store: Store, night: str, records: list[CellRecord], model="digits") -> str:
    config = {"model": "build/digits", "device": DEV, "lab": {"model": model, "night": night}}
    run_id = store.create_run(config, command="test", tag=PREFIX + night)
    for r in records:
        assert store.add_cell(run_id, r)
    store.finish_run(run_id)
    return run_id


def _outcome(cells) -> list[DeviceOutcome]:
    caps = Capabilities("linux", ("cpu",))
    return [DeviceOutcome(DEV, DEV, (ModelOutcome("digits", None, tuple(cells)),), caps)]


def test_previous_night_is_the_baseline_and_a_slowdown_is_a_regression(any_store_url):
    store = Store(any_store_url)
    first = _night(store, "d1", [record(DEV, "digits", "fp32", "cpu", 1000, seed=1)])
    _night(
        store,
        "d2",
        [
            record(DEV, "digits", "fp32", "cpu", 1001, seed=2),
            record(DEV, "digits", "int8", "cpu", 500, seed=3),
        ],
    )
    _night(
        store,
        "d3",
        [
            record(DEV, "digits", "fp32", "cpu", 1200, seed=4),
            record(DEV, "digits", "int8", "cpu", 501, seed=5),
        ],
    )
    base = resolve_baseline(store, "previous", PREFIX, PREFIX + "d3")
    assert base.label == "d2" and len(base.run_ids) == 1
    assert resolve_baseline(store, "previous", PREFIX, PREFIX + "d1").label is None
    assert resolve_baseline(store, "previous", PREFIX, PREFIX + "d9").label == "d3"
    missing = Cell(DEV, "digits", "fp16", "cpu", 1)  # planned, never stored: lost
    planned = [Cell(DEV, "digits", v, "cpu", 1) for v in ("fp32", "int8")] + [missing]
    result = judge_night(
        store, "nightly", "d3", PREFIX + "d3", _outcome(planned), base, CompareConfig()
    )
    by_variant = {c.cell.variant: c for c in result.cells}
    assert by_variant["fp32"].verdict == "slower" and by_variant["fp32"].change > 0.15
    assert by_variant["fp32"].to_dict()["shift"] > 0.15  # the pooled diagnostic agrees
    # 500 -> 501 µs: two nights' levels differ by ~3 % anyway (the default run-to-run
    # noise; these nights have too little history for their own): no verdict
    assert by_variant["int8"].verdict == "inconclusive"
    assert by_variant["fp16"].status == "lost" and "--resume" in by_variant["fp16"].reason
    assert result.exit_code == 1 and len(result.regressions) == 1
    pinned = resolve_baseline(store, f"run:{first}", PREFIX, PREFIX + "d3")
    assert pinned.run_ids == (first,)
    assert resolve_baseline(store, "tag:lab:nightly:d1", PREFIX, PREFIX + "d3").run_ids == (first,)
    assert resolve_baseline(store, "none", PREFIX, PREFIX + "d3").run_ids == ()
    with pytest.raises(HarnessError, match="no run"):
        resolve_baseline(store, "run:nope", PREFIX, PREFIX + "d3")
    with pytest.raises(HarnessError, match="has that tag"):
        resolve_baseline(store, "tag:golden", PREFIX, PREFIX + "d3")


def _judge(store, night, cells):
    base = resolve_baseline(store, "previous", PREFIX, PREFIX + night)
    result = judge_night(store, "nightly", night, PREFIX + night, _outcome(cells), base,
                         CompareConfig())  # fmt: skip
    return {c.cell.variant: c for c in result.cells}, result


def test_a_pure_round_effect_tonight_is_not_a_regression(tmp_path):
    """Tonight two of eight rounds ran 1.6x slow for every cell (the host was busy then):
    the pooled samples move, the typical round does not."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    _night(store, "d1", [record(DEV, "digits", "fp32", "cpu", 1000, seed=1)])
    busy = record(DEV, "digits", "fp32", "cpu", 1000, seed=2)
    x = busy.samples["invoke_us"]
    x[10:20] = [1.6 * v for v in x[10:20]]  # rounds 2 and 3 (5 samples each)
    _night(store, "d2", [busy.with_(samples={"invoke_us": x})])
    by, result = _judge(store, "d2", [Cell(DEV, "digits", "fp32", "cpu", 1)])
    assert by["fp32"].verdict in ("same", "inconclusive") and result.exit_code == 0


def test_a_shift_under_round_noise_needs_rounds(tmp_path):
    """+20 % under 6 % round noise: inconclusive at 3 rounds (JUnit skipped, with the
    reason), slower at 40 rounds."""
    cell = [Cell(DEV, "digits", "fp32", "cpu", 1)]
    verdicts = {}
    for rounds in (3, 40):
        store = Store(f"sqlite:///{tmp_path / f'r{rounds}.db'}")
        for i, level in enumerate((1000, 1200)):
            rec = record(DEV, "digits", "fp32", "cpu", level, n=10 * rounds, rounds=rounds,
                         round_spread=0.06, seed=rounds + i)  # fmt: skip
            _night(store, f"d{i}", [rec])
        by, result = _judge(store, "d1", cell)
        verdicts[rounds] = by["fp32"]
    assert verdicts[3].verdict == "inconclusive" and verdicts[3].outcome == "skipped"
    assert "rounds per run would resolve" in verdicts[3].note
    assert verdicts[40].verdict == "slower" and verdicts[40].outcome == "failure"


def test_a_move_inside_the_cells_night_to_night_noise_is_not_a_regression(tmp_path):
    """Six earlier nights scatter ±8 % (each night's rounds tight): tonight's +12 % is
    clear within the night but ordinary for this cell; +60 % is not."""
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    levels = (1000, 1080, 1150, 990, 920, 1050)
    for i, level in enumerate(levels):
        fp32 = record(DEV, "digits", "fp32", "cpu", level, seed=i)
        _night(store, f"d{i}", [fp32, record(DEV, "digits", "int8", "cpu", 500, seed=50 + i)])
    _night(store, "d6", [record(DEV, "digits", "fp32", "cpu", 1050 * 1.12, seed=9),
                         record(DEV, "digits", "int8", "cpu", 800, seed=10)])  # fmt: skip
    cells = [Cell(DEV, "digits", v, "cpu", 1) for v in ("fp32", "int8")]
    by, result = _judge(store, "d6", cells)
    fp32 = by["fp32"]
    assert fp32.verdict == "inconclusive" and "run-to-run noise" in fp32.note
    assert fp32.night_noise > 0.05 and fp32.change > 0.1
    assert by["int8"].verdict == "slower" and by["int8"].night_noise < 0.02
    assert result.exit_code == 1 and [c.cell.variant for c in result.regressions] == ["int8"]


def test_history_names_the_night_a_small_step_began(any_store_url):
    store = Store(any_store_url)
    nights = [f"2026-05-{d:02d}" for d in range(1, 13)]
    for i, night in enumerate(nights):
        level = 1000 if i < 7 else 1040  # +4%: under the 5% compare threshold every night
        _night(
            store,
            night,
            [
                record(DEV, "digits", "int8", "cpu", level, seed=i),
                record(DEV, "digits", "fp32", "cpu", 2000, seed=100 + i),
            ],
        )
    _night(store, "other", [record(DEV, "other", "fp32", "cpu", 5, seed=0)], model="other")
    h = load_history(store, "digits", DEV)
    assert h.lab == "nightly" and list(h.nights) == nights
    cells = {c.variant: c for c in h.cells}
    ((step, night),) = cells["int8"].steps
    assert night == "2026-05-08" and step.change == pytest.approx(0.04, abs=0.01)
    assert cells["fp32"].steps == ()
    assert [p.night for p in cells["int8"].points] == nights
    with pytest.raises(HarnessError, match="no lab nights"):
        load_history(store, "digits", "elsewhere")
    proc = harness(
        "lab", "history", "--model", "digits", "--device", DEV, "--store", any_store_url, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    int8 = next(c for c in doc["cells"] if c["variant"] == "int8")
    assert [cp["night"] for cp in int8["change_points"]] == ["2026-05-08"]
    table = harness(
        "lab", "history", "--model", "digits", "--device", DEV, "--store", any_store_url
    )
    assert table.returncode == 0, table.stderr
    (marked,) = [ln for ln in table.stdout.splitlines() if "◀" in ln]
    assert "2026-05-08" in marked and "+3." in marked or "+4." in marked
