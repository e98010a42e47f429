"""The SLO pick on constructed runs with known answers, and its CLI."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_user_error, harness

from harness.errors import HarnessError
from harness.measure.stats import aggregate_stats
from harness.report.recommend import (
    Budget,
    describe,
    parse_latency,
    parse_slo,
    pick_for_device,
    recommend,
)
from harness.store.store import Store

from .builders import not_ok, ok


def _run() -> list:
    """One phone: four ok cells with known medians (µs) and accuracies, two not ok."""
    return [
        ok("fp32", "cpu", 1, median=30_000, accuracy=0.980),
        ok("fp16", "gpu", 1, median=8_000, accuracy=0.979),
        ok("dynamic", "xnnpack", 4, median=12_000, accuracy=0.975),
        ok("int8", "nnapi", 1, median=4_000, accuracy=0.960),
        not_ok("unsupported", "no GPU", "int8", "gpu"),
        not_ok("failed", "runner died", "fp32", "nnapi"),
    ]


def _label(c) -> str:
    return f"{c.cell.variant}/{c.cell.delegate}"


@pytest.mark.parametrize(
    ("text", "us"),
    [("20ms", 20_000), ("500us", 500), ("500µs", 500), ("1.5s", 1_500_000), (" 2 ms ", 2000),
     (".5ms", 500)],
)  # fmt: skip
def test_parse_latency(text, us):
    assert parse_latency(text) == pytest.approx(us)


@pytest.mark.parametrize("text", ["20", "ms", "20 min", "-3ms", "0ms", "twenty ms", ""])
def test_bad_latency_is_a_user_error(text):
    with pytest.raises(HarnessError, match="latency"):
        parse_latency(text)


def test_parse_slo_with_and_without_metric():
    assert parse_slo("20ms") == Budget(20_000, metric="median")
    assert parse_slo("p90:5ms") == Budget(5_000, metric="p90")
    with pytest.raises(HarnessError, match="metric"):
        parse_slo("p95:5ms")


def test_budget_met_by_several_picks_the_most_accurate_and_names_the_runner_up():
    (pick,) = recommend(_run(), Budget(15_000))
    assert pick.met and pick.eligible == 3 and pick.ok == 4
    assert _label(pick.best) == "fp16/gpu"
    assert _label(pick.runner_up) == "dynamic/xnnpack"
    assert pick.accuracy_delta == pytest.approx(-0.004)
    assert pick.latency_delta_us == pytest.approx(4_000, rel=0.05)
    text = "\n".join(describe(pick))
    assert "fp16/gpu" in text and "slower" in text and "-0.40 pt" in text


def test_budget_met_by_one():
    pick = pick_for_device("phone", _run(), Budget(5_000))
    assert _label(pick.best) == "int8/nnapi" and pick.runner_up is None and pick.eligible == 1


def test_budget_met_by_none_says_how_far_off():
    pick = pick_for_device("phone", _run(), Budget(1_000))
    assert not pick.met and pick.best is None
    assert _label(pick.fastest) == "int8/nnapi"
    assert "NOT MET" in describe(pick)[0]
    assert pick.to_dict()["met"] is False


def test_min_accuracy_filters_and_says_why():
    pick = pick_for_device("phone", _run(), Budget(5_000, min_accuracy=0.97))
    assert not pick.met
    assert any("below accuracy 0.97" in n for n in pick.notes)
    pick = pick_for_device("phone", _run(), Budget(31_000, min_accuracy=0.979))
    assert _label(pick.best) == "fp32/cpu" and _label(pick.runner_up) == "fp16/gpu"


def test_metric_choice_changes_the_answer():
    records = [
        ok("fp16", "gpu", 1, median=8_000, accuracy=0.98, seed=1),
        ok("int8", "cpu", 1, median=9_000, accuracy=0.97, seed=2),
    ]
    gpu = records[0]
    slow_tail = gpu.latency.__class__(**(gpu.latency.to_dict() | {"p90": 30_000.0}))
    records[0] = gpu.with_(latency=slow_tail)
    assert _label(pick_for_device("phone", records, Budget(10_000)).best) == "fp16/gpu"
    assert _label(pick_for_device("phone", records, Budget(10_000, metric="p90")).best) == (
        "int8/cpu"
    )
    # e2e adds the copies: 9 000 + 50 µs is over an exact 9 020 µs budget, the median is not
    e2e = pick_for_device("phone", records[1:], Budget(9_020, metric="e2e"))
    assert not e2e.met
    assert pick_for_device("phone", records[1:], Budget(9_200, metric="e2e")).met


def test_accuracy_tie_prefers_the_faster():
    records = [ok("fp32", "cpu", 1, 9_000, 0.9800), ok("int8", "cpu", 1, 3_000, 0.9790)]
    assert _label(pick_for_device("p", records, Budget(10_000)).best) == "fp32/cpu"
    pick = pick_for_device("p", records, Budget(10_000, accuracy_tie=0.002))
    assert _label(pick.best) == "int8/cpu"


def test_cells_without_accuracy_rank_last_or_fail_an_accuracy_floor():
    records = [ok("fp32", "cpu", 1, 2_000, None), ok("int8", "cpu", 1, 6_000, 0.9)]
    pick = pick_for_device("p", records, Budget(10_000))
    assert _label(pick.best) == "int8/cpu" and _label(pick.runner_up) == "fp32/cpu"
    assert pick.accuracy_delta is None
    pick = pick_for_device("p", records, Budget(4_000, min_accuracy=0.5))
    assert not pick.met and any("without measured accuracy" in n for n in pick.notes)
    only_unknown = pick_for_device("p", records[:1], Budget(10_000))
    assert _label(only_unknown.best) == "fp32/cpu"


def test_one_pick_per_device():
    records = _run() + [ok("int8", "cpu", 1, median=900, accuracy=0.9, device="board")]
    picks = recommend(records, Budget(2_000))
    assert [(p.device, p.met) for p in picks] == [("phone", False), ("board", True)]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"metric": "p95"}, "metric"), ({"accuracy_tie": -1}, "tie")],
)  # fmt: skip
def test_bad_budget(kwargs, word):
    with pytest.raises(HarnessError, match=word):
        Budget(1_000, **kwargs)


def test_a_fraction_floor_outside_0_1_is_refused_when_the_metric_is_a_fraction():
    with pytest.raises(HarnessError, match="min-accuracy.*top1 is a fraction"):
        pick_for_device("phone", _run(), Budget(5_000, min_accuracy=1.5))


def _rmse(variant, median, value):
    m = {"name": "rmse", "value": value, "higher_is_better": False, "units": "label units"}
    return ok(variant, "cpu", 1, median=median, accuracy=value).with_(metrics=[m])


def test_a_lower_is_better_metric_ranks_and_floors_the_right_way():
    records = [_rmse("fp32", 9_000, 0.10), _rmse("int8", 3_000, 0.40), _rmse("fp16", 5_000, 0.12)]
    pick = pick_for_device("p", records, Budget(10_000))
    assert pick.best.cell.variant == "fp32" and pick.runner_up.cell.variant == "fp16"
    pick = pick_for_device("p", records, Budget(10_000, min_accuracy=0.2, accuracy_tie=0.05))
    assert pick.best.cell.variant == "fp16"  # within the tie of 0.10 and faster; int8 > 0.2
    assert pick.eligible == 2
    text = "\n".join(describe(pick))
    assert "rmse <= 0.2" in text and "rmse 0.12" in text


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def stored(store_url):
    store = Store(store_url)
    run_id = store.create_run({"model": "digits"})
    for r in _run():
        store.add_cell(run_id, r)
    store.finish_run(run_id)
    return store_url, run_id


def test_cli_exit_codes_for_a_ci_gate(stored):
    url, run_id = stored
    met = harness("recommend", run_id, "--store", url, "--max-latency", "15ms")
    assert met.returncode == 0, met.stderr
    assert "best:      digits/fp16/gpu/t1" in met.stdout
    missed = harness("recommend", "latest", "--store", url, "--max-latency", "1ms", "--json")
    assert missed.returncode == 1, missed.stderr
    doc = json.loads(missed.stdout)
    assert doc["met"] is False and doc["picks"][0]["fastest"]["label"] == "digits/int8/nnapi/t1"
    slo = harness("report", run_id, "--store", url, "--slo", "p99:1ms")
    assert slo.returncode == 1 and "NOT MET" in slo.stdout


def test_cli_user_errors_are_one_line(stored):
    url, run_id = stored
    assert_user_error(harness("recommend", "nope", "--store", url, "--max-latency", "5ms"), "nope")
    assert_user_error(
        harness("recommend", run_id, "--store", url, "--max-latency", "20"), "bad latency"
    )
    for flag in ("--min-metric", "--min-accuracy"):  # the new name and its old alias
        assert_user_error(
            harness("recommend", run_id, "--store", url, "--max-latency", "5ms", flag, "97"),
            "min-metric",
        )
    assert_user_error(harness("report", run_id, "--store", url, "--slo", "fast"), "bad latency")


def _android(variant, delegate, mean, accuracy, median=None):
    """An aggregate-only cell as benchmark_model reports it: count/mean/std, no samples."""
    lat = aggregate_stats(50, mean, mean * 0.05, mean * 0.9, mean * 1.4, median=median)
    return ok(variant, delegate, 1, accuracy=accuracy, device="pixel").with_(
        latency=lat, end_to_end=None, samples={}
    )


def test_aggregate_only_cells_are_judged_by_their_mean_and_say_so():
    records = [
        _android("fp32", "cpu", mean=30_000, accuracy=0.98),
        _android("fp16", "gpu", mean=9_000, accuracy=0.979),
        _android("int8", "nnapi", mean=5_000, accuracy=0.96, median=4_800),  # printed one
    ]
    pick = pick_for_device("pixel", records, Budget(10_000, min_accuracy=0.97))
    assert _label(pick.best) == "fp16/gpu" and pick.best.statistic == "mean"
    assert pick.best.latency_us == 9_000
    assert pick.fastest.statistic == "median" and pick.fastest.latency_us == 4_800
    text = "\n".join(describe(pick))
    assert "9.00 ms ᵐ" in text and "2 aggregate-only cell(s) judged by the mean" in text
    # the mean is never a stand-in for a tail percentile: those cells are left out
    p90 = pick_for_device("pixel", records, Budget(10_000, metric="p90"))
    assert not p90.met and p90.ok == 0
    assert any("3 aggregate-only cell(s) left out: the tool printed no p90" in n for n in p90.notes)


def test_raw_sample_cells_are_never_judged_by_the_mean():
    pick = pick_for_device("phone", _run(), Budget(10_000))
    assert {c.statistic for c in (pick.best, pick.runner_up, pick.fastest)} == {"median"}
    assert not any("aggregate-only" in n for n in pick.notes)
