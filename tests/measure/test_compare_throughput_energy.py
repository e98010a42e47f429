"""Throughput and energy verdicts of harness.measure.compare: on constructed rounds with
known answers, through the views, and on two real load runs through the CLI."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from cli_helpers import harness
from rich.console import Console

from harness.cells import Cell, CellRecord
from harness.lab.night import CellResult
from harness.measure.compare import (
    REGRESSIONS,
    CompareConfig,
    compare_cell,
    compare_models,
    compare_runs,
    round_rates,
)
from harness.measure.stats import latency_stats
from harness.measure.summarize import summarize
from harness.report.compare_view import comparison_document, render_comparison, render_markdown
from harness.runners.python_runner import pool_loads
from harness.store.store import Store

CFG = CompareConfig()  # 3 % run-to-run noise in two-run intervals, as `harness compare`
ROUNDS_ONLY = CompareConfig(run_noise=0.0)  # the rounds' own evidence alone
THROUGHPUT_VERDICTS = {"lower", "higher", "same", "inconclusive"}


def load_cell(model="digits", concurrency=2) -> Cell:
    return Cell("local", model, "int8", "xnnpack", 1, 1, concurrency)


def latency_rounds(k: int, seed: int, level: float = 1000.0) -> list[list[float]]:
    """k rounds of 20 request latencies, all rounds at one level (latency stays put)."""
    rng = np.random.default_rng(seed)
    return [list(level * rng.lognormal(0, 0.02, 20)) for _ in range(k)]


def load_record(rates, c: Cell | None = None, seed=0, energy=None, window_s=0.5) -> CellRecord:
    """A load cell whose round r completed rates[r] samples/s over a window_s window, the
    load pooled as pool_loads pools it (the runner's own code)."""
    parts = latency_rounds(len(rates), seed)
    windows = [
        {"instances": 2, "requests": round(r * window_s), "samples": r * window_s,
         "window_s": window_s, "per_instance": [1, 1]}
        for r in rates
    ]  # fmt: skip
    load = pool_loads(windows)
    samples = [v for p in parts for v in p]
    extra = {
        "round_sizes": [len(p) for p in parts],
        "load": load,
        "throughput_sps": load["samples"] / load["window_s"],
    }
    if energy is not None:
        extra["energy"] = energy
    return CellRecord(
        c or load_cell(), "ok", latency=latency_stats(samples), samples={"invoke_us": samples},
        extra=extra,
    )  # fmt: skip


def energy_figure(round_mj, status="Discharging") -> dict:
    """An EnergyFigure dict as the runner stores it: the pooled figure, and `round_mj`
    only when the cell ran more than one round (pool_energy)."""
    meaningful = status == "Discharging"
    figure = {
        "mj_per_inference": float(np.mean(round_mj)),
        "battery_status": status,
        "meaningful": meaningful,
        "note": None if meaningful else f"battery status {status!r}: not on battery alone",
    }
    if len(round_mj) > 1:
        figure["round_mj"] = list(round_mj)
    return figure


def steady(level, k=8, cv=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return list(level * rng.lognormal(0, cv, k))


# --- throughput ---------------------------------------------------------------------------


def test_pool_loads_keeps_each_rounds_window_beside_the_pooled_keys():
    windows = [
        {"instances": 2, "requests": 10, "samples": 20, "window_s": 0.5, "per_instance": [5, 5]},
        {"instances": 2, "requests": 8, "samples": 16, "window_s": 0.4, "per_instance": [4, 4]},
    ]
    pooled = pool_loads(windows)
    assert pooled["requests"] == 18 and pooled["samples"] == 36
    assert pooled["window_s"] == pytest.approx(0.9)
    assert pooled["windows"] == 2 and pooled["instances"] == 2
    assert pooled["per_instance"] == [9, 9]
    assert pooled["rounds"] == [
        {"requests": 10, "samples": 20, "window_s": 0.5},
        {"requests": 8, "samples": 16, "window_s": 0.4},
    ]


def test_the_stored_record_keeps_the_rounds_and_rates_come_from_them():
    windows = [{"instances": 1, "requests": n, "samples": n, "window_s": 1.0} for n in (90, 110)]
    raw = {"status": "ok", "invoke_us": [100.0, 101.0], "load": pool_loads(windows)}
    r = summarize(load_cell(), "sha", 1, raw, None, None)
    assert r.extra["load"]["rounds"][1]["samples"] == 110
    assert round_rates(r) == (90.0, 110.0)
    assert r.throughput_sps == pytest.approx(100.0)


def test_a_load_without_rounds_is_one_round_and_a_batch_cell_has_no_load_throughput():
    one = load_record([500.0])
    del one.extra["load"]["rounds"]  # as Android's one-round load, or an older record
    assert round_rates(one) == (500.0,)
    x = [800.0, 810.0]
    batch = CellRecord(Cell("local", "digits", "int8", "xnnpack", 1, 8), "ok",
                       latency=latency_stats(x), samples={"invoke_us": x})  # fmt: skip
    assert round_rates(batch) is None
    assert compare_cell(batch, batch, CFG).throughput is None  # batch / latency: latency's


def test_a_clear_throughput_drop_across_rounds_is_lower_and_a_regression():
    base = load_record(steady(1000, seed=1), seed=1)
    cand = load_record(steady(800, seed=2), seed=1)  # the same latencies: only the rate fell
    out = compare_cell(base, cand, CFG)
    t = out.throughput
    assert t.verdict == "lower" and t.is_regression
    assert t.method == "rounds" and t.run_noise == 0.03  # two runs: run noise included
    assert t.rounds_baseline == t.rounds_candidate == 8
    assert len(t.baseline_rounds) == 8 and t.baseline_rounds == round_rates(base)
    assert t.change == pytest.approx(-0.2, abs=0.03)
    assert t.ci_low < t.change < t.ci_high < 0
    assert t.pooled_baseline == pytest.approx(base.throughput_sps)
    assert out.latency.verdict != "slower"
    assert out.verdict == "throughput down" and out.is_regression
    assert "throughput: samples/s" in out.note and "lower" in out.note
    result = compare_runs([base], [cand], CFG)
    assert result.regressions == (out,) and result.counts() == {"throughput down": 1}
    # the lab reads the same verdict: a JUnit failure, listed among the regressions
    assert CellResult(out.cell, "ok", verdict=out.verdict).outcome == "failure"
    assert "throughput down" in REGRESSIONS


def test_a_clear_throughput_rise_is_higher_and_not_a_regression():
    out = compare_cell(load_record(steady(800, seed=1)), load_record(steady(1000, seed=2)), CFG)
    assert out.throughput.verdict == "higher" and not out.is_regression
    assert out.verdict == out.latency.verdict


def test_identical_rounds_are_same():
    rates = steady(1000, seed=3)
    out = compare_cell(load_record(rates), load_record(rates), ROUNDS_ONLY)
    assert out.throughput.verdict == "same" and out.throughput.change == pytest.approx(0)
    assert -0.05 <= out.throughput.ci_low <= 0 <= out.throughput.ci_high <= 0.05
    assert out.throughput.note is None


def test_noisy_overlapping_rounds_are_inconclusive_and_say_why():
    base = load_record([1000.0, 700.0, 1300.0])
    cand = load_record([900.0, 1250.0, 650.0])
    out = compare_cell(base, cand, CFG)
    t = out.throughput
    assert t.verdict == "inconclusive" and t.ci_low < 0 < t.ci_high
    assert not out.is_regression
    assert "between-round CV" in t.note and f"throughput: {t.note}" in out.note


def test_one_round_per_side_is_inconclusive():
    out = compare_cell(load_record([1000.0]), load_record([500.0]), CFG)
    assert out.throughput.verdict == "inconclusive"
    assert "1 round on one side" in out.throughput.note


def test_paired_throughput_pairs_round_r_with_round_r():
    """Rounds that move together (the other core busy in rounds 1 and 3) hide a 10 % drop
    between two runs; paired round by round it is plain."""
    levels = [1000.0, 600.0, 1000.0, 650.0, 980.0, 1020.0]
    a = load_record(levels, load_cell("a"))
    b = load_record([0.9 * v for v in levels], load_cell("b"))
    unpaired = compare_cell(a, b, ROUNDS_ONLY).throughput
    assert unpaired.verdict == "inconclusive"
    result = compare_models([a, b], "a", "b", CFG)
    [c] = result.cells
    assert c.throughput.method == "paired rounds" and c.throughput.run_noise == 0
    assert c.throughput.change == pytest.approx(-0.1)
    assert c.throughput.verdict == "lower" and c.verdict == "throughput down"


def test_a_latency_regression_keeps_its_verdict_and_the_note_names_the_throughput():
    base = load_record(steady(1000, seed=1), seed=1)
    slow = load_record(steady(700, seed=2), seed=1)
    slow = slow.with_(samples={"invoke_us": [1.5 * v for v in slow.samples["invoke_us"]]})
    out = compare_cell(base, slow, CFG)
    assert out.latency.verdict == "slower" and out.throughput.verdict == "lower"
    assert out.verdict == "slower" and "throughput:" in out.note


# --- energy -------------------------------------------------------------------------------


def test_energy_rising_per_round_is_more_and_a_regression():
    base = load_record([1000.0] * 6, energy=energy_figure(steady(2.0, k=6, seed=4)))
    cand = load_record([1000.0] * 6, energy=energy_figure(steady(2.6, k=6, seed=5)))
    out = compare_cell(base, cand, CFG)
    e = out.energy
    assert e.verdict == "more" and e.is_regression and e.method == "rounds"
    assert e.rounds_baseline == e.rounds_candidate == 6 and e.run_noise == 0.03
    assert e.change == pytest.approx(0.3, abs=0.05) and 0 < e.ci_low < e.change < e.ci_high
    assert e.baseline_rounds == tuple(base.extra["energy"]["round_mj"])
    assert out.throughput.verdict != "lower"
    assert out.verdict == "energy up" and out.is_regression
    less = compare_cell(cand, base, CFG)
    assert less.energy.verdict == "less" and not less.is_regression


def test_energy_with_one_reading_a_side_is_inconclusive_with_the_note():
    base = load_record([1000.0], energy=energy_figure([2.0]))
    cand = load_record([1000.0], energy=energy_figure([3.0]))
    e = compare_cell(base, cand, CFG).energy
    assert e.method == "figures" and e.verdict == "inconclusive"
    assert e.change == pytest.approx(0.5)  # the figures' change is still shown
    assert e.ci_low is None and e.ci_high is None
    assert "one energy reading" in e.note and "cannot be judged" in e.note


def test_a_charging_side_gets_no_energy_verdict_and_the_note_says_why():
    base = load_record([1000.0] * 4, energy=energy_figure([2.0, 2.1, 2.0, 2.05]))
    cand = load_record([1000.0] * 4, energy=energy_figure([5.0, 5.1, 5.0, 5.2], "Charging"))
    out = compare_cell(base, cand, CFG)
    assert out.energy.verdict is None and out.energy.change is None
    assert "candidate" in out.energy.note and "Charging" in out.energy.note
    assert "energy: no verdict: candidate: battery status 'Charging'" in out.note
    assert not out.is_regression and out.verdict == out.latency.verdict


def test_paired_energy_pairs_rounds_that_both_sides_measured():
    a = load_record([1000.0] * 5, load_cell("a"), energy=energy_figure([2.0, 3.0, 2.0, 2.5, 2.2]))
    mj = [2.4, 3.6, None, 3.0, 2.64]  # round 2 had no reading: it drops out of the pairs
    fig = energy_figure([v for v in mj if v]) | {"round_mj": mj}
    b = load_record([1000.0] * 5, load_cell("b"), energy=fig)
    [c] = compare_models([a, b], "a", "b", CFG).cells
    assert c.energy.method == "paired rounds" and c.energy.rounds_baseline == 4
    assert c.energy.change == pytest.approx(0.2)
    assert c.energy.verdict == "more" and c.energy.candidate_rounds[2] is None


# --- views and plain latency runs ---------------------------------------------------------


def plain(seed) -> CellRecord:
    parts = latency_rounds(5, seed)
    x = [v for p in parts for v in p]
    return CellRecord(Cell("local", "digits", "fp32", "xnnpack", 1), "ok", latency=latency_stats(x),
                      samples={"invoke_us": x}, extra={"round_sizes": [20] * 5})  # fmt: skip


def test_plain_latency_output_has_no_throughput_or_energy_columns():
    result = compare_runs([plain(1)], [plain(2)], CFG)
    [c] = result.cells
    assert c.throughput is None and c.energy is None
    doc = comparison_document(result)
    assert doc["cells"][0]["throughput"] is None and doc["cells"][0]["energy"] is None
    md = render_markdown(result)
    assert "samples/s" not in md and "mJ" not in md
    out = io.StringIO()
    render_comparison(result, Console(file=out, width=80))
    assert "tput" not in out.getvalue() and "energy" not in out.getvalue()


def test_views_show_throughput_and_energy_where_cells_have_them():
    base = load_record(steady(1000, seed=1), energy=energy_figure(steady(2.0, seed=4)))
    cand = load_record(steady(800, seed=2), energy=energy_figure(steady(2.0, seed=5)))
    result = compare_runs([plain(1), base], [plain(2), cand], CFG)
    doc = json.loads(json.dumps(comparison_document(result)))  # JSON-safe throughout
    t = doc["cells"][1]["throughput"]
    assert t["verdict"] == "lower" and len(t["baseline_rounds"]) == 8
    assert doc["cells"][1]["energy"]["verdict"] in {"same", "inconclusive"}
    assert doc["regression"] is True and doc["counts"]["throughput down"] == 1
    md = render_markdown(result)
    assert "Δ samples/s [CI]" in md and "Δ mJ/inference [CI]" in md
    row = next(line for line in md.splitlines() if "int8/xnnpack" in line)
    assert "lower" in row and "**throughput down**" in row
    out = io.StringIO()
    render_comparison(result, Console(file=out, width=120))
    text = out.getvalue()
    assert "tput" in text and "lower" in text and "throughput down" in text
    assert "REGRESSION" in text


# --- real runs through the CLI ------------------------------------------------------------


def _run(model_dir, store_url) -> str:
    proc = harness(
        "run", model_dir, "--variants", "int8", "--delegates", "xnnpack", "--concurrency", "1,2",
        "--min-secs", "0.6", "--rounds", "3", "--store", store_url, "--json", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["run_id"]


@pytest.mark.slow
def test_two_real_load_runs_compare_throughput_on_per_round_rates(variants, store_url):
    """Two host runs of the digits model at concurrency 1 and 2: each cell's throughput is
    compared on its 3 rounds' own rates, which are the stored windows' rates and pool to
    the runs' throughput figures; the verdict, whatever the host's noise made it, agrees
    with its interval and with the exit code."""
    model_dir = variants.manifest_path.parent
    a, b = _run(model_dir, store_url), _run(model_dir, store_url)
    proc = harness("compare", a, b, "--store", store_url, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert proc.returncode == (1 if doc["regression"] else 0)
    store = Store(store_url)
    records = {
        run: {r.cell.concurrency: r for r in store.cells(run) if r.status == "ok"} for run in (a, b)
    }
    cells = {c["concurrency"]: c for c in doc["cells"]}
    assert set(cells) == {1, 2}
    for n, c in cells.items():
        t = c["throughput"]
        assert t is not None, c
        assert t["verdict"] in THROUGHPUT_VERDICTS and t["method"] == "rounds"
        assert t["rounds_baseline"] == t["rounds_candidate"] == 3
        for side, run in (("baseline", a), ("candidate", b)):
            r = records[run][n]
            rounds = r.extra["load"]["rounds"]
            rates = [w["samples"] / w["window_s"] for w in rounds]
            assert t[f"{side}_rounds"] == pytest.approx(rates)
            assert t[f"pooled_{side}"] == pytest.approx(r.throughput_sps)
            pooled = sum(w["samples"] for w in rounds) / sum(w["window_s"] for w in rounds)
            assert pooled == pytest.approx(r.throughput_sps)
            assert min(rates) <= t[side] <= max(rates)  # the typical round's rate
        assert t["change"] == pytest.approx(t["candidate"] / t["baseline"] - 1)
        assert t["ci_low"] <= t["change"] <= t["ci_high"]
        if t["verdict"] == "lower":
            assert t["ci_high"] < 0 and c["verdict"] in ("slower", "throughput down")
        elif t["verdict"] == "higher":
            assert t["ci_low"] > 0
        elif t["verdict"] == "same":
            assert t["ci_low"] >= -0.05 and t["ci_high"] <= 0.05
        assert c["regression"] == (c["verdict"] in REGRESSIONS)
        assert math.isfinite(t["noise"])
    md = harness("compare", a, b, "--store", store_url, "--markdown")
    assert "Δ samples/s [CI]" in md.stdout
