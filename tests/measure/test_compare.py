"""Verdict rules of harness.measure.compare on constructed samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cells import Cell, CellRecord, LatencyStats
from harness.errors import HarnessError
from harness.measure.compare import (
    CompareConfig,
    compare_accuracy,
    compare_cell,
    compare_runs,
    parse_percent,
)
from harness.measure.stats import latency_stats

CFG = CompareConfig()


def cell(variant="fp32", delegate="xnnpack", threads=1, device="local") -> Cell:
    return Cell(device, "digits", variant, delegate, threads)


def record(samples=None, c: Cell | None = None, **kw) -> CellRecord:
    samples = None if samples is None else [float(v) for v in samples]
    return CellRecord(
        cell=c or cell(),
        status=kw.pop("status", "ok"),
        latency=kw.pop("latency", latency_stats(samples) if samples else None),
        samples={"invoke_us": samples or []},
        **kw,
    )


def latency(seed: int, n: int, scale: float = 1.0, sigma: float = 0.1) -> np.ndarray:
    """Right-skewed latencies around 1000 µs * scale, with a few heavy-tail spikes."""
    rng = np.random.default_rng(seed)
    x = 1000 * scale * rng.lognormal(0, sigma, n)
    spikes = rng.random(n) < 0.02
    x[spikes] *= rng.uniform(2, 5, spikes.sum())
    return x


def test_identical_distributions_are_same():
    out = compare_cell(record(latency(1, 500)), record(latency(2, 500)), CFG)
    assert out.verdict == "same"
    assert out.latency.method == "mann-whitney+bootstrap"
    assert out.latency.ci_low < 0 < out.latency.ci_high
    assert out.latency.p_value > CFG.alpha


def test_the_same_samples_are_same_with_p_one():
    x = latency(3, 200)
    out = compare_cell(record(x), record(x), CFG)
    assert out.verdict == "same" and out.latency.change == 0.0
    assert out.latency.p_value == pytest.approx(1.0, abs=0.05)


def test_twenty_percent_shift_is_slower_and_the_reverse_is_faster():
    base, cand = latency(4, 300), latency(5, 300, scale=1.2)
    slow = compare_cell(record(base), record(cand), CFG)
    assert slow.verdict == "slower" and slow.is_regression
    assert slow.latency.change == pytest.approx(0.2, abs=0.03)
    assert slow.latency.ci_low < 0.2 < slow.latency.ci_high
    assert slow.latency.p_value < 1e-10
    fast = compare_cell(record(cand), record(base), CFG)
    assert fast.verdict == "faster" and not fast.is_regression


def test_significant_two_percent_shift_below_threshold_is_same():
    base, cand = latency(6, 5000, sigma=0.05), latency(7, 5000, scale=1.02, sigma=0.05)
    out = compare_cell(record(base), record(cand), CFG)
    assert out.latency.p_value < 1e-6 and out.latency.ci_low > 0  # clearly real...
    assert out.verdict == "same"  # ...but under the 5 % threshold
    low_bar = CompareConfig(latency_threshold=0.01)
    assert compare_cell(record(base), record(cand), low_bar).verdict == "slower"


def test_big_noisy_change_with_few_samples_is_same():
    base, cand = latency(8, 5, sigma=0.6), latency(9, 5, scale=1.5, sigma=0.6)
    out = compare_cell(record(base), record(cand), CFG)
    assert abs(out.latency.change) > CFG.latency_threshold  # large point estimate...
    assert out.latency.p_value > CFG.alpha  # ...that no test can back
    assert out.verdict == "same"


def test_mass_moving_between_modes_is_same_though_the_median_doubles():
    """11 % of the samples move to the slow mode: the median jumps +100 %, the typical
    sample (Hodges-Lehmann shift) does not move, so no verdict."""
    base = np.r_[np.full(60, 100.0), np.full(40, 200.0)]
    cand = np.r_[np.full(49, 100.0), np.full(51, 200.0)]
    out = compare_cell(record(base), record(cand), CompareConfig(alpha=0.2))
    assert out.latency.p_value < 0.2
    assert out.latency.change == pytest.approx(1.0)
    assert out.latency.shift == pytest.approx(0.0, abs=1e-9)
    assert out.verdict == "same"
    assert "median moved +100%, the typical sample +0%" in out.note


def test_every_sample_slower_in_a_bimodal_run_is_slower_though_the_median_ci_spans_0():
    """A 5 us model on a busy host: half the invokes preempted. Every sample 25 % slower
    must be caught; the median's bootstrap CI cannot see it (it jumps between modes)."""
    rng = np.random.default_rng(11)
    base = np.r_[5 * rng.lognormal(0, 0.02, 75), 10 * rng.lognormal(0, 0.02, 75)]
    out = compare_cell(record(base), record(1.25 * base), CFG)
    assert out.latency.ci_low < 0 < out.latency.ci_high
    assert out.latency.p_value < 1e-6
    assert out.latency.change == pytest.approx(0.25)
    assert out.latency.shift == pytest.approx(0.25, abs=0.01)
    assert out.verdict == "slower" and out.note is None


def test_a_median_that_lands_in_the_other_mode_does_not_hide_a_slowdown():
    """Base: 45 % of invokes in the slow mode; candidate: every invoke 30 % slower but
    55 % in the slow mode. The medians sit in different modes (change -28 %)."""
    rng = np.random.default_rng(12)
    base = np.r_[1000 * rng.lognormal(0, 0.02, 55), 1800 * rng.lognormal(0, 0.02, 45)]
    cand = 1.3 * np.r_[1000 * rng.lognormal(0, 0.02, 45), 1800 * rng.lognormal(0, 0.02, 55)]
    out = compare_cell(record(base), record(cand), CFG)
    assert out.latency.change > 0.5  # 1000 -> 1.3 * 1800
    assert out.latency.shift == pytest.approx(0.3, abs=0.05)
    assert out.verdict == "slower"


@pytest.mark.parametrize(
    "base_acc,cand_acc,down", [(0.978, 0.972, True), (0.978, 0.974, False), (0.97, 0.965, False)]
)
def test_accuracy_threshold_in_percentage_points(base_acc, cand_acc, down):
    change = compare_accuracy(base_acc, cand_acc, CFG)
    assert change.change_pp == pytest.approx(100 * (cand_acc - base_acc))
    assert change.down is down  # a drop of exactly 0.5 pp is not "down"
    assert compare_accuracy(None, cand_acc, CFG) is None


def test_accuracy_down_wins_over_latency_and_keeps_its_verdict():
    base, cand = latency(10, 300), latency(11, 300, scale=1.2)
    out = compare_cell(record(base, accuracy=0.98), record(cand, accuracy=0.96), CFG)
    assert out.verdict == "accuracy down" and out.is_regression
    assert out.latency.verdict == "slower"
    assert out.accuracy.change_pp == pytest.approx(-2.0)
    faster_but_worse = compare_cell(record(cand, accuracy=0.98), record(base, accuracy=0.9), CFG)
    assert faster_but_worse.verdict == "accuracy down"


def test_new_missing_failed_unsupported():
    a, b = cell("fp32"), cell("int8")
    c, d = cell("fp16"), cell("dynamic")
    x = latency(12, 100)
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
    assert got[("fp32", 1)][0] == "same"
    assert got[("int8", 1)] == ("missing", "not in the candidate run")
    assert got[("fp16", 1)] == ("failed", "candidate: runner died")
    assert got[("dynamic", 1)][0] == "unsupported"
    assert got[("fp32", 4)] == ("new", "only in the candidate run")
    assert [r.cell.variant for r in out.cells][:4] == ["fp32", "int8", "fp16", "dynamic"]
    assert not out.regressions
    assert out.counts() == {"failed": 1, "same": 1, "missing": 1, "new": 1, "unsupported": 1}


def test_cells_match_on_every_key_field():
    x, y = latency(13, 200), latency(14, 200, scale=1.3)
    baseline = [record(x, cell(device="pixel")), record(x, cell(device="local"))]
    candidate = [record(y, cell(device="pixel")), record(x, cell(device="local"))]
    out = compare_runs(baseline, candidate, CFG)
    assert [(r.cell.device, r.verdict) for r in out.cells] == [
        ("pixel", "slower"),
        ("local", "same"),
    ]
    assert len(out.regressions) == 1


def test_results_do_not_depend_on_other_cells():
    x, y = latency(15, 200), latency(16, 200, scale=1.03)
    alone = compare_runs([record(x)], [record(y)], CFG).cells[0]
    other = record(x, cell("int8"))
    crowded = compare_runs([other, record(x)], [other, record(y)], CFG).cells[1]
    assert alone == crowded


def aggregate(mean, std, n) -> LatencyStats:
    """What benchmark_model reports: mean/std/count, no raw samples (median unknown)."""
    return LatencyStats(n, mean, mean, mean, mean, std, mean, mean, mean, mean, 0)


@pytest.mark.parametrize(
    "base,cand,expected",
    [
        ((1000, 50, 100), (1200, 60, 100), "slower"),  # t ~ 26: clear and big
        ((1000, 50, 100), (800, 60, 100), "faster"),
        ((1000, 50, 100), (1020, 50, 100), "same"),  # t ~ 2.8, p ~ 0.005, but 2 % < 5 %
        ((1000, 400, 4), (1300, 400, 4), "same"),  # 30 % but not significant
        ((1000, 50, 1), (1300, 50, 100), "same"),  # n = 1: no test
    ],
)
def test_aggregate_only_rule_is_welch(base, cand, expected):
    b = record(None, latency=aggregate(*base))
    c = record(None, latency=aggregate(*cand))
    out = compare_cell(b, c, CFG)
    assert out.verdict == expected
    assert out.latency.method == "welch" and out.latency.statistic == "mean"
    assert out.latency.change == pytest.approx(cand[0] / base[0] - 1)
    assert "too few" in out.note if base[2] < 2 else "Welch" in out.note


def test_aggregate_ci_excludes_zero_exactly_when_p_below_alpha():
    from scipy import stats

    for cand_mean in np.linspace(1000, 1040, 41):
        out = compare_cell(
            record(None, latency=aggregate(1000, 50, 100)),
            record(None, latency=aggregate(cand_mean, 50, 100)),
            CompareConfig(latency_threshold=0.0),
        )
        ref = stats.ttest_ind_from_stats(cand_mean, 50, 100, 1000, 50, 100, equal_var=False)
        assert out.latency.p_value == pytest.approx(ref.pvalue, rel=1e-6)
        assert (out.latency.ci_low > 0) == (ref.pvalue < 0.01)


def test_mixed_raw_and_aggregate_uses_the_aggregate_rule():
    raw = record(latency(17, 300))
    agg = record(None, latency=aggregate(1300, 100, 50))
    out = compare_cell(raw, agg, CFG)
    assert out.latency.method == "welch" and out.verdict == "slower"


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
        CompareConfig(resamples=10)
