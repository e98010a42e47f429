"""Pure measurement functions: latency statistics, Pareto front, accuracy and drift."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cells import Cell, CellRecord, LatencyStats
from harness.measure.accuracy import output_drift, top1_accuracy
from harness.measure.pareto import pareto_front
from harness.measure.stats import count_outliers, latency_stats, median_ci
from harness.measure.summarize import summarize


def _samples(n: int, seed: int = 0) -> np.ndarray:
    """Skewed, latency-like samples (a floor plus a log-normal tail)."""
    rng = np.random.default_rng(seed)
    return 100.0 + rng.lognormal(mean=2.0, sigma=0.5, size=n)


# ----------------------------------------------------------------------------- latency


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 50, 501])
def test_percentiles_mean_and_spread_match_numpy(n):
    x = _samples(n, seed=n)
    s = latency_stats(list(x))
    assert s.n == n
    assert s.median == pytest.approx(np.median(x))
    assert s.p90 == pytest.approx(np.percentile(x, 90))
    assert s.p99 == pytest.approx(np.percentile(x, 99))
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1) if n > 1 else 0.0)
    assert (s.min, s.max) == (x.min(), x.max())
    assert s.min <= s.median <= s.p90 <= s.p99 <= s.max


@pytest.mark.parametrize("n", [1, 3, 6, 10, 51, 400])
def test_median_ci_contains_the_median_within_the_range(n):
    s = latency_stats(_samples(n, seed=100 + n))
    assert s.min <= s.ci_low <= s.median <= s.ci_high <= s.max


def test_median_ci_narrows_as_samples_grow():
    widths = []
    for n in (20, 200, 2000, 20000):
        s = latency_stats(_samples(n, seed=7))
        widths.append(s.ci_high - s.ci_low)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False)), widths


def test_median_ci_covers_the_true_median_most_of_the_time():
    # the order-statistic interval is distribution-free: ~95% coverage on any shape
    true_median = 100.0 + np.exp(2.0)  # median of 100 + lognormal(2, 0.5)
    hits = sum(
        (s := latency_stats(_samples(101, seed=seed))).ci_low <= true_median <= s.ci_high
        for seed in range(400)
    )
    assert 0.90 <= hits / 400 <= 0.99


def test_small_samples_use_the_range_as_ci():
    x = np.sort(_samples(5))
    assert median_ci(x) == (x[0], x[-1])


def test_an_outlier_is_counted_but_never_dropped():
    x = list(_samples(99, seed=3))
    base = latency_stats(x)
    far = max(x) * 100
    s = latency_stats(x + [far])
    assert s.outliers >= base.outliers + 1
    assert s.max == far  # still there
    assert s.mean == pytest.approx(np.mean(x + [far]))
    assert s.mean > base.mean + (far - base.mean) / 100 * 0.9  # and it moves the mean
    assert s.n == 100


def test_outliers_on_both_sides_and_none_in_constant_data():
    assert count_outliers(np.full(50, 7.0)) == 0
    x = np.concatenate([np.full(40, 10.0) + np.arange(40) * 0.01, [0.0, 1000.0]])
    assert count_outliers(np.sort(x)) == 2
    assert count_outliers(np.array([1.0, 2.0, 1000.0])) == 0  # too few to call


def test_empty_samples_give_none():
    assert latency_stats([]) is None
    assert latency_stats(np.array([])) is None


def test_latency_stats_round_trip():
    s = latency_stats(_samples(30))
    assert LatencyStats.from_dict(s.to_dict()) == s
    assert LatencyStats.from_dict(s.to_dict() | {"added_later": 1}) == s


# ----------------------------------------------------------------------------- pareto


def test_pareto_front_known_answer():
    points = [
        (10.0, 0.90),  # fastest: on the front
        (20.0, 0.95),  # slower but more accurate: on the front
        (25.0, 0.93),  # slower and less accurate than (20, .95): dominated
        (40.0, 0.99),  # most accurate: on the front
        (40.0, 0.98),  # same latency, less accurate: dominated
        (10.0, 0.80),  # same latency as the fastest, less accurate: dominated
    ]
    assert pareto_front(points) == [True, True, False, True, False, False]


def test_pareto_ties_and_missing_accuracy():
    assert pareto_front([(5.0, 0.9), (5.0, 0.9)]) == [True, True]  # equal: nobody dominates
    assert pareto_front([]) == []
    assert pareto_front([(3.0, None)]) == [True]
    # without accuracy, latency alone decides
    assert pareto_front([(3.0, None), (2.0, None), (4.0, None)]) == [False, True, False]
    # any accuracy beats none at equal or lower latency
    assert pareto_front([(3.0, None), (3.0, 0.1)]) == [False, True]
    assert pareto_front([(1.0, None), (3.0, 0.1)]) == [True, True]


def test_pareto_front_is_never_empty_and_never_dominated():
    rng = np.random.default_rng(5)
    for _ in range(20):
        pts = [(float(a), float(b)) for a, b in rng.random((15, 2))]
        flags = pareto_front(pts)
        front = [p for p, f in zip(pts, flags, strict=True) if f]
        assert front
        for lat, acc in front:
            assert not any((l2 <= lat and a2 >= acc and (l2 < lat or a2 > acc)) for l2, a2 in pts)
        for p, f in zip(pts, flags, strict=True):
            if not f:  # every dropped point has a dominator on the front
                assert any(q[0] <= p[0] and q[1] >= p[1] for q in front)


# ----------------------------------------------------------------------------- accuracy


def test_top1_accuracy():
    outputs = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6], [0.7, 0.3]])
    assert top1_accuracy(outputs, np.array([1, 0, 0, 0])) == 0.75
    assert top1_accuracy(outputs, np.array([[1], [0], [1], [0]])) == 1.0  # column labels
    with pytest.raises(ValueError):
        top1_accuracy(outputs, np.array([1, 0]))


def test_output_drift():
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]], dtype=np.float32)
    same = output_drift(ref.copy(), ref)
    assert (same.max_abs, same.mean_abs, same.top1_agreement) == (0.0, 0.0, 1.0)
    moved = ref + np.array([[0.0, 0.0], [0.0, 0.0], [0.3, -0.3]], dtype=np.float32)
    d = output_drift(moved, ref)
    assert d.max_abs == pytest.approx(0.3, rel=1e-5)
    assert d.mean_abs == pytest.approx(0.1, rel=1e-5)
    assert d.top1_agreement == pytest.approx(2 / 3)  # the third sample's arg-max flipped
    assert d.to_dict() == {
        "max_abs": d.max_abs,
        "mean_abs": d.mean_abs,
        "top1_agreement": d.top1_agreement,
    }
    with pytest.raises(ValueError):
        output_drift(ref[:2], ref)


# ----------------------------------------------------------------------------- summarize

CELL = Cell("local", "digits", "int8", "xnnpack", 2)


def test_summarize_an_ok_cell():
    ref = np.eye(10, dtype=np.float32)[[1, 2, 3, 4]]
    outputs = ref.copy()
    outputs[3] = np.eye(10, dtype=np.float32)[7]
    raw = {
        "status": "ok",
        "init_us": 1500,
        "first_us": 80.5,
        "invoke_us": [10, 11, 12],
        "e2e_us": [12, 13, 14],
        "warmup_us": [30.0],
        "peak_rss_kb": 4096,
        "sync_point": "invoke",
        "eval": {"outputs": outputs},
        "env": {"runtime": "x"},
    }
    r = summarize(CELL, "ab" * 32, 1234, raw, np.array([1, 2, 3, 4]), ref)
    assert r.status == "ok" and r.reason is None
    assert r.latency == latency_stats([10, 11, 12])
    assert r.end_to_end == latency_stats([12, 13, 14])
    assert (r.init_us, r.first_us, r.peak_rss_kb) == (1500.0, 80.5, 4096)
    assert r.accuracy == 0.75
    assert r.drift["top1_agreement"] == 0.75 and r.drift["max_abs"] == 1.0
    assert r.samples["invoke_us"] == [10.0, 11.0, 12.0]  # raw samples kept as floats
    assert r.samples["e2e_us"] == [12.0, 13.0, 14.0] and r.samples["warmup_us"] == [30.0]
    assert r.extra["sync_point"] == "invoke" and r.env == {"runtime": "x"}
    assert CellRecord.from_dict(r.to_dict()) == r


@pytest.mark.parametrize(
    "raw, status, reason",
    [
        ({"status": "unsupported", "reason": "NNAPI is Android", "init_us": 5.0}, "unsupported",
         "NNAPI is Android"),
        ({"status": "failed", "reason": "boom", "invoke_us": [1.0]}, "failed", "boom"),
        ({"status": "ok"}, "failed", "no timed samples"),  # ok without samples is no measurement
        ({"status": "weird", "invoke_us": [1.0]}, "failed", None),
        ({"status": "ok", "invoke_us": [1.0, "x"], "e2e_us": [2.0, 2.0]}, "failed", "malformed"),
        ({"status": "ok", "invoke_us": [1.0, float("nan")]}, "failed", "malformed"),
        ({"status": "ok", "invoke_us": "1,2"}, "failed", "malformed"),
    ],
)  # fmt: skip
def test_summarize_never_makes_up_numbers(raw, status, reason):
    r = summarize(CELL, "0" * 64, 10, raw, np.arange(1), np.zeros((1, 10)))
    assert r.status == status
    assert r.latency is None and r.end_to_end is None
    assert r.accuracy is None and r.drift is None
    if reason:
        assert reason in r.reason


def test_summarize_drift_needs_a_matching_reference():
    outputs = np.zeros((4, 10), np.float32)
    raw = {"status": "ok", "invoke_us": [1.0], "e2e_us": [2.0], "eval": {"outputs": outputs}}
    assert summarize(CELL, "0" * 64, 1, raw, None, np.zeros((3, 10))).drift is None
    assert summarize(CELL, "0" * 64, 1, raw, np.arange(3), None).accuracy is None
