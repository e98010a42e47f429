"""`harness compare` end to end: runs in a real SQLite store, through the console entry point."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from rich.console import Console

from harness.cells import Cell, CellRecord
from harness.cli import main
from harness.measure.compare import compare_runs
from harness.measure.stats import latency_stats
from harness.report.compare_view import render_comparison
from harness.runners.python_runner import TimingConfig
from harness.store.store import Store

CELLS = [
    Cell("local", "digits", v, d, t)
    for v in ("fp32", "int8")
    for d in ("cpu", "xnnpack")
    for t in (1, 2)
]


def harness(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """Run the real console entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["harness", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "80")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def synthetic(c: Cell, seed: int, scale: float = 1.0, accuracy: float = 0.978) -> CellRecord:
    """8 rounds of 25 samples: each round at its own level (1 % apart), 5 % jitter."""
    rng = np.random.default_rng(seed)
    levels = np.repeat(rng.lognormal(0, 0.01, 8), 25)
    x = (20 + 5 * c.threads) * scale * levels * rng.lognormal(0, 0.05, 200)
    return record_from(c, x, accuracy, [25] * 8)


def record_from(c: Cell, invoke_us, accuracy, sizes) -> CellRecord:
    x = [float(v) for v in invoke_us]
    return CellRecord(
        c,
        "ok",
        latency=latency_stats(x),
        accuracy=accuracy,
        samples={"invoke_us": x},
        extra={"round_sizes": sizes},
    )


def store_run(store: Store, records) -> str:
    run_id = store.create_run({"test": True}, command="test")
    for r in records:
        assert store.add_cell(run_id, r)
    store.finish_run(run_id)
    return run_id


@pytest.fixture
def runs(store_url):
    """(url, baseline, A/A twin, candidate with int8/xnnpack/t1 20 % slower and fp32/cpu/t2
    0.8 pp less accurate)."""
    store = Store(store_url)
    base = store_run(store, [synthetic(c, i) for i, c in enumerate(CELLS)])
    twin = store_run(store, [synthetic(c, 100 + i) for i, c in enumerate(CELLS)])
    cand = []
    for i, c in enumerate(CELLS):
        slow = 1.2 if (c.variant, c.delegate, c.threads) == ("int8", "xnnpack", 1) else 1.0
        acc = 0.970 if (c.variant, c.delegate, c.threads) == ("fp32", "cpu", 2) else 0.978
        cand.append(synthetic(c, 200 + i, slow, acc))
    return store_url, base, twin, store_run(store, cand)


def test_no_regression_exits_0_with_an_80_column_table(runs, capsys, monkeypatch):
    url, base, twin, _ = runs
    code, out, err = harness(capsys, monkeypatch, "compare", base, twin, "--store", url)
    assert code == 0, err
    assert err == ""
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    assert max(len(line) for line in out.splitlines()) <= 80
    # two runs 1 % apart in every round: the default 3 % run-to-run noise leaves a
    # ±11 % interval, wider than the 5 % threshold: no verdict either way
    assert sum(line.rstrip().endswith(" inconclusive") for line in out.splitlines()) == 8
    assert "no regression found, 8 inconclusive (8 inconclusive)" in out
    code, out, _ = harness(
        capsys, monkeypatch, "compare", base, twin, "--store", url, "--run-noise", "0"
    )
    assert code == 0 and "no regression (8 same)" in out


def test_regression_exits_1_and_names_the_cells(runs, capsys, monkeypatch):
    url, base, _, cand = runs
    code, out, _ = harness(capsys, monkeypatch, "compare", base, cand, "--store", url)
    assert code == 1
    assert "REGRESSION (1 slower, 1 accuracy down, 6 inconclusive)" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    row = next(line for line in out.splitlines() if line.lstrip().startswith("int8/xnnpack/t1"))
    assert row.split()[-1] == "slower" and "% [+" in row


@pytest.mark.parametrize("flag", ["--metric-threshold", "--accuracy-threshold"])
def test_thresholds_are_options(runs, capsys, monkeypatch, flag):
    """--metric-threshold, and --accuracy-threshold its old name, are one option."""
    url, base, _, cand = runs
    code, out, _ = harness(
        capsys,
        monkeypatch,
        "compare",
        base,
        cand,
        "--store",
        url,
        "--latency-threshold",
        "25%",
        flag,
        "1",
    )
    assert code == 0 and "no regression" in out


def test_json_shape(runs, capsys, monkeypatch):
    url, base, _, cand = runs
    code, out, _ = harness(capsys, monkeypatch, "compare", base, cand, "--store", url, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["schema"] == 2 and doc["baseline"] == base and doc["candidate"] == cand
    assert doc["regression"] is True and doc["paired"] is False
    assert doc["counts"] == {"slower": 1, "accuracy down": 1, "inconclusive": 6}
    assert doc["config"] == {
        "latency_threshold": 0.05,
        "accuracy_threshold_pp": 0.5,
        "metric_threshold": None,
        "alpha": 0.01,
        "run_noise": 0.03,
    }
    by = {(c["variant"], c["delegate"], c["threads"]): c for c in doc["cells"]}
    slow = by[("int8", "xnnpack", 1)]
    assert slow["verdict"] == "slower" and slow["regression"] is True
    assert set(slow["latency"]) == {
        "method",
        "statistic",
        "baseline",
        "candidate",
        "change",
        "ci_low",
        "ci_high",
        "ci_level",
        "p_value",
        "rounds_baseline",
        "rounds_candidate",
        "noise",
        "rounds_needed",
        "verdict",
        "run_noise",
        "shift",
        "pooled_p",
        "n_baseline",
        "n_candidate",
    }
    assert slow["latency"]["rounds_baseline"] == 8 and slow["latency"]["n_baseline"] == 200
    assert slow["latency"]["ci_low"] < 0.2 < slow["latency"]["ci_high"]
    acc = by[("fp32", "cpu", 2)]
    assert acc["verdict"] == "accuracy down"
    assert acc["accuracy"]["change_pp"] == pytest.approx(-0.8)


def test_markdown_shape(runs, capsys, monkeypatch):
    url, base, _, cand = runs
    code, out, _ = harness(capsys, monkeypatch, "compare", base, cand, "--store", url, "--markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"**harness compare** `{base}` → `{cand}`: REGRESSION")
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 2 + len(CELLS)
    assert all(ln.count("|") == 12 for ln in table)
    assert any("| **slower** |" in ln and "int8 | xnnpack" not in ln for ln in table)
    assert any("| **accuracy down** |" in ln for ln in table)


def test_unknown_run_is_one_line_exit_2(runs, capsys, monkeypatch):
    url, base, _, _ = runs
    code, out, err = harness(capsys, monkeypatch, "compare", base, "20990101-nope", "--store", url)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"harness: error: no run '20990101-nope' in {url}"]


def test_bad_threshold_is_one_line_exit_2(runs, capsys, monkeypatch):
    url, base, twin, _ = runs
    code, _, err = harness(
        capsys, monkeypatch, "compare", base, twin, "--store", url, "--latency-threshold", "fast"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "percentage" in err


def test_colour_only_on_a_terminal():
    base = [synthetic(c, i) for i, c in enumerate(CELLS)]
    cand = [synthetic(c, 50 + i, scale=1.3) for i, c in enumerate(CELLS)]
    result = compare_runs(base, cand)
    for tty in (True, False):
        buf = io.StringIO()
        render_comparison(result, Console(file=buf, force_terminal=tty, width=80))
        assert ("\x1b[" in buf.getvalue()) is tty
        assert "slower" in buf.getvalue()


def test_failed_new_missing_rows_render_within_80_columns():
    long = Cell("emulator-5554", "mobilenet_v2", "dynamic", "xnnpack", 4)
    base = [synthetic(long, 1, accuracy=0.9), synthetic(CELLS[0], 2)]
    cand = [
        synthetic(long, 3, scale=1.3, accuracy=0.88),
        CellRecord(CELLS[0], "failed", reason="runner died: signal 11"),
        synthetic(CELLS[1], 4),
    ]
    result = compare_runs(base, cand)
    assert [c.verdict for c in result.cells] == ["accuracy down", "failed", "new"]
    buf = io.StringIO()
    render_comparison(result, Console(file=buf, width=80))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "runner died: signal 11" in text and "accuracy down" in text


@pytest.mark.slow
def test_real_digits_runs(variants, store_url, capsys, monkeypatch, tmp_path):
    """Two real runs of the digits model; a third made of run 1 slowed down 3× (a tiny
    model on a busy CI host had round medians with a 15 % CV: there, even +50 % is not
    clear from 6 rounds per run, and the rule says so rather than guess)."""
    model_dir = variants.manifest_path.parent
    ids = []
    for _ in range(2):
        code, out, err = harness(
            capsys,
            monkeypatch,
            "run",
            model_dir,
            "--variants",
            "fp32,int8",
            "--delegates",
            "xnnpack",
            "--runs",
            "150",
            "--store",
            store_url,
            "--json",
        )
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    store = Store(store_url)
    real = store.cells(ids[0])
    slowed = [
        r.with_(samples={"invoke_us": [3.0 * v for v in r.samples["invoke_us"]]}) for r in real
    ]
    slow_id = store_run(store, slowed)
    code, out, _ = harness(
        capsys, monkeypatch, "compare", ids[0], slow_id, "--store", store_url, "--json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["counts"] == {"slower": len(real)}, [
        (c["verdict"], c["latency"], c["note"]) for c in doc["cells"]
    ]
    for c in doc["cells"]:
        assert c["latency"]["change"] == pytest.approx(2.0, rel=1e-9)
        assert c["latency"]["shift"] == pytest.approx(2.0, rel=1e-6)
        assert c["latency"]["rounds_baseline"] == TimingConfig.rounds  # the default
    # A/A on the same host: whatever the verdicts, every field is filled and the exit code
    # agrees with them (host noise between two runs is real; no verdict is asserted)
    code, out, _ = harness(
        capsys, monkeypatch, "compare", ids[0], ids[1], "--store", store_url, "--json"
    )
    doc = json.loads(out)
    assert code == (1 if doc["regression"] else 0)
    assert all(c["latency"]["p_value"] is not None for c in doc["cells"])


def test_two_runs_take_each_cells_run_to_run_noise_from_the_stores_history(
    tmp_path, capsys, monkeypatch
):
    """Six earlier runs of a cell scatter ±8 % as a whole (each run's rounds tight): a
    +12 % run is ordinary for it, so `compare` says inconclusive with that noise, where
    the default 3 % alone would call it slower; a cell steady across runs keeps the
    3 % floor and its +60 % is slower. A store without history keeps the default."""
    from lab.conftest import record

    store = Store(f"sqlite:///{tmp_path / 'h.db'}")

    def run(fp32_us, int8_us, seed):
        run_id = store.create_run({})
        for r in (record("d", "m", "fp32", "cpu", fp32_us, seed=seed),
                  record("d", "m", "int8", "cpu", int8_us, seed=seed + 50)):  # fmt: skip
            store.add_cell(run_id, r)
        store.finish_run(run_id)
        return run_id

    url = store.url
    first, second = run(1000, 500, 0), run(1120, 800, 1)  # no history yet: default noise
    code, out, _ = harness(capsys, monkeypatch, "compare", first, second, "--store", url,
                           "--json")  # fmt: skip
    by = {c["variant"]: c for c in json.loads(out)["cells"]}
    assert by["fp32"]["verdict"] == "slower" and by["fp32"]["latency"]["noise"] is not None
    for i, level in enumerate((1080, 1150, 990, 920, 1050)):
        run(level, 500, 10 + i)
    base, cand = run(1050, 500, 20), run(1050 * 1.12, 800, 21)
    code, out, _ = harness(capsys, monkeypatch, "compare", base, cand, "--store", url, "--json")
    by = {c["variant"]: c for c in json.loads(out)["cells"]}
    assert by["fp32"]["verdict"] == "inconclusive" and by["fp32"]["latency"]["change"] > 0.1
    assert by["fp32"]["latency"]["run_noise"] > 0.05
    assert by["int8"]["verdict"] == "slower" and by["int8"]["latency"]["run_noise"] == 0.03
    assert code == 1
