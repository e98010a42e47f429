"""A lab history in a real SQLite store: trends, the change point, the baseline."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cli_helpers import assert_user_error, harness
from sqlalchemy import update

from harness.errors import HarnessError
from harness.measure.series import load_trend
from harness.report.trend import sparkline, trend_html
from harness.store import schema
from harness.store.store import Store

from .builders import not_ok, ok

NIGHTS = 10
SHIFT_AT = 6  # int8/xnnpack is 15% slower from this night on
START = dt.datetime(2026, 3, 1, 2, 0)


@pytest.fixture
def lab(store_url):
    """Ten nightly runs of digits on 'pixel'; night 2 is tagged baseline; night 4 failed."""
    store = Store(store_url)
    run_ids = []
    for night in range(NIGHTS):
        run_id = store.create_run({"lab": "nightly"}, tag="baseline" if night == 2 else None)
        slow = 1.15 if night >= SHIFT_AT else 1.0
        records = [
            ok("fp32", "cpu", 1, median=2000, device="pixel", seed=night),
            ok("int8", "xnnpack", 1, median=500 * slow, device="pixel", seed=100 + night),
            ok("int8", "xnnpack", 1, median=999, device="other-phone", seed=night),
        ]
        if night == 4:
            records[0] = not_ok("failed", "runner died", "fp32", "cpu", device="pixel")
        for r in records:
            store.add_cell(run_id, r)
        with store.engine.begin() as conn:  # make them nightly
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.run_id == run_id)
                .values(created_at=START + dt.timedelta(days=night))
            )
        run_ids.append(run_id)
    unrelated = store.create_run({})
    store.add_cell(unrelated, ok(model="other-model", device="pixel"))
    return store, run_ids


def _series(trend, variant):
    return next(s for s in trend.series if s.variant == variant)


def test_the_step_is_found_at_the_known_run(lab):
    store, run_ids = lab
    trend = load_trend(store, "digits", "pixel")
    assert [r.run_id for r in trend.runs] == run_ids  # oldest first, others filtered out
    assert trend.baseline == run_ids[2]  # the tagged run
    int8 = _series(trend, "int8")
    ((step, run),) = int8.step_runs()
    assert run.run_id == run_ids[SHIFT_AT]
    assert step.change == pytest.approx(0.15, abs=0.02)
    fp32 = _series(trend, "fp32")
    assert fp32.steps == () and len(fp32.points) == NIGHTS and len(fp32.ok_points) == NIGHTS - 1
    doc = trend.to_dict()
    assert doc["series"][1]["change_points"][0]["run_id"] == run_ids[SHIFT_AT]


def test_the_chart_marks_the_change_point_and_the_baseline(lab):
    store, run_ids = lab
    html = trend_html(load_trend(store, "digits", "pixel"))
    assert html.count('<g class="change-point"') == 1
    assert html.count('<g class="baseline"') == 2  # one per cell chart
    assert html.count('class="ci-band"') == 2
    assert html.count('<g class="pt"') == 2 * NIGHTS - 1  # the failed night has no point
    assert "+15." in html or "+14." in html or "+16." in html
    assert run_ids[SHIFT_AT] in html


def test_window_and_explicit_baseline(lab):
    store, run_ids = lab
    trend = load_trend(store, "digits", "pixel", last=3)
    assert [r.run_id for r in trend.runs] == run_ids[-3:]
    assert trend.baseline == run_ids[-3]  # no tagged run in the window: the oldest
    trend = load_trend(store, "digits", "pixel", last=3, baseline=run_ids[0])
    assert [r.run_id for r in trend.runs] == [run_ids[0], *run_ids[-3:]]
    with pytest.raises(HarnessError, match="no runs of model"):
        load_trend(store, "digits", "nowhere")
    with pytest.raises(HarnessError, match="at least 2"):
        load_trend(store, "digits", "pixel", last=1)


def test_sparkline():
    assert sparkline([]) == ""
    assert sparkline([1, 1]) == "▄▄"
    assert sparkline([1, 2, 3]) == "▁▅█"


def test_cli_trend(lab, tmp_path):
    store, run_ids = lab
    url = store.url
    proc = harness("report", "--trend", "--model", "digits", "--device", "pixel", "--store", url)
    assert proc.returncode == 0, proc.stderr
    assert "int8 xnnpack t1" in proc.stdout and "+15% @03-07" in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    proc = harness("report", "--trend", "--model", "digits", "--device", "pixel", "--store", url,
                   "--last", "5", "--json", "--html", tmp_path / "t.html")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["runs"]) == 5
    assert (tmp_path / "t.html").read_text().count("<svg") == 2
    assert_user_error(harness("report", "--trend", "--model", "digits", "--store", url), "--device")
    assert_user_error(
        harness("report", "--trend", "--model", "x", "--device", "pixel", "--store", url),
        "no runs of model",
    )
    assert_user_error(harness("report", "--store", url), "RUN_ID")
