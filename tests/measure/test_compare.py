"""Verdict rules of harness.measure.compare on constructed rounds with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.measure.compare import (
    CompareConfig,
    compare_accuracy,
    compare_cell,
    compare_models,
    compare_runs,
    parse_percent,
)
from harness.measure.stats import aggregate_stats, latency_stats

CFG = CompareConfig()
ROUNDS_ONLY = CompareConfig(run_noise=0.0)  # the rounds' own evidence, no run-level term


def cell(variant="fp32", delegate="xnnpack", threads=1, device="local", model="digits") -> Cell:
    return Cell(device, model, variant, delegate, threads)


def run_rounds(seed, k=10, per_round=30, scale=1.0, round_sigma=0.03, spikes=(), sigma=0.05):
    """k rounds of raw samples: each round has its own level (a fresh process at another
    moment: log-normal, round_sigma), samples jitter around it; `spikes` are rounds
    made 1.6x slow (the other core busy)."""
    rng = np.random.default_rng(seed)
    levels = 1000 * scale * np.exp(rng.normal(0, round_sigma, k))
    levels[list(spikes)] *= 1.6
    return [lv * rng.lognormal(0, sigma, per_round) for lv in levels]


def record(parts=None, c: Cell | None = None, **kw) -> CellRecord:
    parts = parts or []
    samples = [float(v) for p in parts for v in p]
    extra = {"round_sizes": [len(p) for p in parts]} if parts else {}
    return CellRecord(
        cell=c or cell(),
        status=kw.pop("status", "ok"),
        latency=kw.pop("latency", latency_stats(samples) if samples else None),
        samples={"invoke_us": samples},
        extra=kw.pop("extra", extra),
        **kw,
    )


def test_a_aa_pair_of_runs_is_same_when_rounds_agree():
    out = compare_cell(record(run_rounds(1)), record(run_rounds(2)), ROUNDS_ONLY)
    assert out.verdict == "same"
    assert out.latency.method == "rounds" and out.latency.statistic == "median"
    assert out.latency.rounds_baseline == out.latency.rounds_candidate == 10
    assert out.latency.n_baseline == 300
    assert -0.05 <= out.latency.ci_low < 0 < out.latency.ci_high <= 0.05


def test_a_pure_round_effect_with_many_samples_is_not_a_regression():
    """300 samples per run, the candidate hit by two slow rounds: pooled samples call it
    (Mann-Whitney p tiny), the round-level rule must not."""
    out = compare_cell(record(run_rounds(3)), record(run_rounds(4, spikes=(2, 6))), CFG)
    assert out.latency.pooled_p < CFG.alpha  # the old, pooled evidence says "different"
    assert out.verdict in ("same", "inconclusive")
    assert not out.is_regression


def test_a_true_shift_under_round_noise_is_inconclusive_at_3_rounds_slower_at_30():
    few = compare_cell(
        record(run_rounds(5, k=3, per_round=100, round_sigma=0.08)),
        record(run_rounds(6, k=3, per_round=100, round_sigma=0.08, scale=1.10)),
        CFG,
    )
    assert few.verdict == "inconclusive"
    assert few.latency.pooled_p < 1e-6  # pooled samples would have called it
    assert few.latency.rounds_needed and few.latency.rounds_needed > 3
    assert "between-round CV" in few.note and "rounds per run would resolve ±5%" in few.note
    many = compare_cell(
        record(run_rounds(7, k=30, per_round=10, round_sigma=0.08)),
        record(run_rounds(8, k=30, per_round=10, round_sigma=0.08, scale=1.10)),
        ROUNDS_ONLY,
    )
    assert many.verdict == "slower" and many.is_regression
    assert many.latency.change == pytest.approx(0.10, abs=0.04)
    assert many.latency.ci_low > 0


def test_faster_and_a_small_real_change_inside_the_threshold_is_same():
    def quiet(seed, scale=1.0):
        return run_rounds(seed, scale=scale, round_sigma=0.003, sigma=0.01)

    base = quiet(9)
    fast = compare_cell(record(base), record(quiet(10, 0.8)), CFG)
    assert fast.verdict == "faster" and not fast.is_regression
    small = compare_cell(record(base), record(quiet(11, 1.02)), ROUNDS_ONLY)
    assert small.latency.ci_low > 0  # real...
    assert small.verdict == "same"  # ...but inside ±5 %: equivalence shown
    low_bar = compare_cell(record(base), record(quiet(11, 1.02)), CompareConfig(0.01, run_noise=0))
    assert low_bar.verdict == "slower"


def test_run_to_run_noise_widens_two_run_intervals_but_not_paired_ones():
    """Two precise runs 6 % apart: the rounds alone call it real; with 3 % run-to-run
    noise (a whole run sits at its own level) two runs cannot tell, and the note says
    to time both in one run."""

    def quiet(seed, scale=1.0, model="m"):
        parts = run_rounds(seed, k=20, scale=scale, round_sigma=0.003, sigma=0.01)
        return record(parts, cell(model=model))

    base, cand = quiet(30), quiet(31, 1.06)
    assert compare_cell(base, cand, ROUNDS_ONLY).verdict == "slower"
    wide = compare_cell(base, cand, CFG)
    assert wide.verdict == "inconclusive" and wide.latency.run_noise == 0.03
    assert wide.latency.ci_low < 0 < 0.06 < wide.latency.ci_high
    assert "two runs cannot resolve ±5% at 3.0% run-to-run noise" in wide.note
    assert wide.latency.rounds_needed is None
    paired = compare_models([base, quiet(31, 1.06, "n")], "m", "n", CFG)
    assert paired.cells[0].latency.run_noise == 0 and paired.cells[0].verdict == "slower"


def test_one_round_per_run_is_inconclusive_and_says_why():
    out = compare_cell(record(run_rounds(12, k=1)), record(run_rounds(13, k=1, scale=2)), CFG)
    assert out.verdict == "inconclusive"
    assert "no between-round evidence" in out.note


def test_a_record_without_round_sizes_is_one_round():
    parts = run_rounds(14)
    legacy = record(parts, extra={})
    out = compare_cell(legacy, record(parts), CFG)
    assert out.latency.rounds_baseline == 1 and out.verdict == "inconclusive"


@pytest.mark.parametrize(
    "base_acc,cand_acc,down", [(0.978, 0.972, True), (0.978, 0.974, False), (0.97, 0.965, False)]
)
def test_accuracy_threshold_in_percentage_points(base_acc, cand_acc, down):
    change = compare_accuracy(base_acc, cand_acc, CFG)
    assert change.change_pp == pytest.approx(100 * (cand_acc - base_acc))
    assert change.down is down  # a drop of exactly 0.5 pp is not "down"
    assert compare_accuracy(None, cand_acc, CFG) is None


def test_accuracy_down_wins_over_latency_and_keeps_its_verdict():
    base, cand = run_rounds(15, round_sigma=0.005), run_rounds(16, scale=1.3, round_sigma=0.005)
    out = compare_cell(record(base, accuracy=0.98), record(cand, accuracy=0.96), CFG)
    assert out.verdict == "accuracy down" and out.is_regression
    assert out.latency.verdict == "slower"
    assert out.accuracy.change_pp == pytest.approx(-2.0)


def test_new_missing_failed_unsupported_and_counts():
    a, b = cell("fp32"), cell("int8")
    c, d = cell("fp16"), cell("dynamic")
    x = run_rounds(17, round_sigma=0.005)
    baseline = [
        record(x, a),
        record(x, b),
        record(x, c),
        record(None, d, status="unsupported", reason="no NNAPI"),
    ]
    candidate = [
        record(None, c, status="failed", reason="runner died"),
        record(x, a),
        record(x, cell("fp32", threads=4)),
        record(None, d, status="unsupported", reason="no NNAPI"),
    ]
    out = compare_runs(baseline, candidate, CFG, "A", "B")
    got = {(r.cell.variant, r.cell.threads): (r.verdict, r.note) for r in out.cells}
    assert got[("fp32", 1)][0] == "inconclusive"  # identical rounds, but two runs
    assert got[("int8", 1)] == ("missing", "not in the candidate")
    assert got[("fp16", 1)] == ("failed", "candidate: runner died")
    assert got[("dynamic", 1)][0] == "unsupported"
    assert got[("fp32", 4)] == ("new", "only in the candidate")
    assert not out.regressions
    assert out.counts() == {
        "failed": 1,
        "inconclusive": 1,
        "new": 1,
        "missing": 1,
        "unsupported": 1,
    }


def test_runs_that_share_no_cell_are_an_error():
    with pytest.raises(HarnessError, match="share no cell"):
        compare_runs([record(run_rounds(1), cell(device="a"))], [record(run_rounds(1))], CFG)


def test_results_do_not_depend_on_other_cells():
    x, y = run_rounds(18), run_rounds(19, scale=1.03)
    alone = compare_runs([record(x)], [record(y)], CFG).cells[0]
    other = record(x, cell("int8"))
    crowded = compare_runs([other, record(x)], [other, record(y)], CFG).cells[1]
    assert alone == crowded


def android(means, std=50.0, n=40) -> CellRecord:
    """An aggregate-only (benchmark_model) cell: per-round mean/std/count, no samples."""
    aggs = [{"n": n, "mean": m, "std": std, "min": m, "max": m} for m in means]
    total = n * len(means)
    return CellRecord(
        cell(),
        "ok",
        latency=aggregate_stats(total, float(np.mean(means)), std, min(means), max(means)),
        extra={"runner": {"rounds_aggregate": aggs}, "rounds": len(means)},
    )


def test_aggregate_only_cells_follow_the_same_rules_on_round_means():
    rng = np.random.default_rng(20)
    base = 1000 * np.exp(rng.normal(0, 0.01, 8))
    slow = compare_cell(android(base), android(1.2 * base[::-1]), CFG)
    assert slow.verdict == "slower" and slow.latency.statistic == "mean"
    assert "aggregate-only" in slow.note
    same = compare_cell(android(base), android(base[::-1]), ROUNDS_ONLY)
    assert same.verdict == "same"
    one = compare_cell(android([1000.0]), android([1300.0]), CFG)
    assert one.verdict == "inconclusive"


def test_mixed_raw_and_aggregate_compares_means():
    raw = record(run_rounds(21, k=8, round_sigma=0.005))
    agg = android(1400 * np.exp(np.random.default_rng(22).normal(0, 0.01, 8)))
    out = compare_cell(raw, agg, CFG)
    assert out.latency.statistic == "mean" and out.verdict == "slower"


def test_paired_models_cancel_round_effects_that_two_runs_cannot():
    """A and B in one run: every round swings ±30 % for both; B is 10 % slower."""
    rng = np.random.default_rng(23)
    levels = 1000 * np.exp(rng.normal(0, 0.3, 8))
    a = [lv * rng.lognormal(0, 0.02, 20) for lv in levels]
    b = [1.1 * lv * rng.lognormal(0, 0.02, 20) for lv in levels]
    records = [record(a, cell(model="base")), record(b, cell(model="pruned"))]
    out = compare_models(records, "base", "pruned", CFG, "R1")
    (c,) = out.cells
    assert out.paired and c.latency.method == "paired rounds"
    assert c.verdict == "slower" and c.latency.change == pytest.approx(0.10, abs=0.02)
    assert c.cell.model == "pruned" and out.baseline_id == "R1:base"
    unpaired = compare_cell(records[0], records[1], CFG)
    assert unpaired.verdict == "inconclusive"


def test_paired_model_names_must_be_in_the_run():
    records = [record(run_rounds(1), cell(model="base"))]
    with pytest.raises(HarnessError, match="holds no model 'other'.*it has base"):
        compare_models(records, "base", "other", CFG, "R1")
    with pytest.raises(HarnessError, match="same model"):
        compare_models(records, "base", "base", CFG, "R1")


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("5", 0.05), (" 2.5 % ", 0.025), ("0", 0)])
def test_parse_percent(text, value):
    assert parse_percent(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-1%", "nan", ""])
def test_parse_percent_rejects(text):
    with pytest.raises(HarnessError, match="percentage"):
        parse_percent(text)


def test_config_validates():
    with pytest.raises(ValueError):
        CompareConfig(alpha=0)
    with pytest.raises(ValueError):
        CompareConfig(latency_threshold=-0.1)
    assert math.isclose(CompareConfig().latency_threshold, 0.05)
