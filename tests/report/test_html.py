"""The HTML report as markup: sections, counts, escaping, self-containment (no browser)."""

from __future__ import annotations

import re

from harness.report.environment import display_status, warnings
from harness.report.html import op_profile, run_html
from harness.report.markdown import run_markdown
from harness.report.recommend import Budget, recommend

from .builders import not_ok, ok

HOSTILE = '</title><script>alert("x")</script>&amp;\'quote"'


def _records():
    return [
        ok("fp32", "cpu", 1, median=2000, accuracy=0.98),
        ok("int8", "xnnpack", 2, median=600, accuracy=0.97),
        ok("fp16", "gpu", 1, median=900, accuracy=0.98, extra={"fully_accelerated": False,
                                                               "delegated_ops": 7,
                                                               "total_ops": 9}),
        not_ok("unsupported", "NNAPI is an Android delegate"),
        not_ok("failed", "runner died: <signal 9>", delegate="gpu", variant="int8"),
    ]  # fmt: skip


def _count(html: str, pattern: str) -> int:
    return len(re.findall(pattern, html))


def test_points_rows_and_statuses():
    html = run_html("run-1", _records())
    assert _count(html, r'<g class="pt"') == 3  # one point per ok cell
    assert _count(html, r'<g class="bar"') == 3
    assert _count(html, r"<tr (hidden )?data-cell=") == 5  # every cell (unsupported hidden)
    for status in ("st-ok", "st-partially", "st-unsupported", "st-failed"):
        assert status in html
    assert "7 of 9 ops on the delegate" in html
    assert 'class="front"' in html
    assert "runner died: &lt;signal 9&gt;" in html


def test_display_status():
    records = _records()
    assert [display_status(r) for r in records] == [
        "ok", "ok", "partially delegated", "unsupported", "failed"
    ]  # fmt: skip


def test_self_contained():
    html = run_html("run-1", _records())
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    assert html.count("<script>") == 1  # only our inline script
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_hostile_strings_are_escaped_everywhere():
    records = [
        ok("fp32", HOSTILE, 1, model=HOSTILE, device=HOSTILE,
           env={"runtime": HOSTILE, HOSTILE: "x"}, reason=None),
        not_ok("failed", HOSTILE, variant=HOSTILE, model=HOSTILE, device=HOSTILE),
    ]  # fmt: skip
    picks = recommend(records, Budget(10_000))
    html = run_html(HOSTILE, records, picks=picks)
    assert "<script>alert" not in html
    assert html.count("<script>") == 1
    assert (
        "&lt;/title&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;&#x27;quote"
        in html
    )
    md = run_markdown(HOSTILE, records)
    assert "<script>" not in md and "&lt;script&gt;" in md


PROFILE = [{"op": "CONV_2D", "us": 300.0, "count": 2}, {"op": "FULLY_CONNECTED", "us": 100.0}]
SNAPSHOTS = {  # the shape harness.devices.snapshot takes, before and after a run
    "before": {
        "battery": {"level": 90, "temp_c": 30.0},
        "thermal_status": {"level": 0, "name": "none"},
        "thermal_zones": [{"zone": "z0", "type": "cpu", "temp_c": 40.0}],
        "props": {"ro.kernel.qemu": "1"},
    },
    "after": {
        "battery": {"level": 88, "temp_c": 37.0},
        "thermal_status": {"level": 2, "name": "moderate"},
        "thermal_zones": [{"zone": "z0", "type": "cpu", "temp_c": 60.0}],
    },
}


def test_optional_sections_only_when_present():
    plain = run_html("r", [ok()])
    assert "per-op profile" not in plain and "delegation coverage" not in plain
    assert "device state" not in plain
    profiled = ok(extra={"op_profile": PROFILE}, env={"runtime": "litert"} | SNAPSHOTS)
    html = run_html("r", [profiled])
    assert "per-op profile" in html and "CONV_2D" in html and "75%" in html
    assert "device state" in html and "moderate (2)" in html
    warns = warnings([profiled])
    assert any("emulator" in w for w in warns)
    assert any("throttling" in w for w in warns)
    assert any("battery temp_c rose from 30 to 37" in w for w in warns)
    assert any("hottest zone temp_c rose" in w for w in warns)


def test_op_profile_shapes():
    assert op_profile({}) == []
    assert op_profile({"profile": {"ADD": 1.0, "CONV": 5.0}}) == [("CONV", 5.0, None),
                                                                 ("ADD", 1.0, None)]  # fmt: skip
    assert op_profile({"ops_profile": [{"name": "X", "avg_us": 2, "count": 3}, "junk"]}) == [
        ("X", 2.0, 3)
    ]


def test_warnings_for_noise_and_emulators():
    noisy = ok(median=1000)
    lat = noisy.latency.to_dict() | {"outliers": 30, "ci_low": 800.0, "ci_high": 1300.0}
    noisy = noisy.with_(latency=noisy.latency.__class__(**lat))
    warns = warnings([noisy, ok(device="emulator-5554")])
    assert any("outlier samples" in w for w in warns)
    assert any("CI wider" in w for w in warns)
    assert any(w.startswith("emulator-5554: an emulator") for w in warns)
    assert warnings([ok()]) == []


def test_slo_section_and_pick_ring():
    records = _records()
    html = run_html("r", records, picks=recommend(records, Budget(1_000)))
    assert "SLO pick" in html and 'class="met"' in html
    assert 'class="budget"' in html and 'r="11"' in html  # budget line, ring round the pick
    html = run_html("r", records, picks=recommend(records, Budget(100)))
    assert 'class="unmet"' in html and "NOT MET" in html


def test_no_accuracy_band_and_empty_runs():
    html = run_html("r", [ok(accuracy=None), ok("int8", accuracy=None, median=500)])
    assert "no acc." in html and html.count('<g class="pt"') == 2
    assert "no ok cells to plot" in run_html("r", [not_ok()])
    assert "This run has no cells" in run_html("r", [])


def test_markdown_tables():
    md = run_markdown("run-1", _records())
    assert "### device phone" in md
    assert md.count("| digits |") == 5
    assert "| int8 ★ | xnnpack | 2 | ok |" in md
    assert "unsupported: NNAPI is an Android delegate" in md


def test_unsupported_cells_are_grouped_under_their_reason_and_the_axis_names_the_metric():
    auc = {"name": "auc", "value": 0.97, "higher_is_better": True, "units": "fraction"}
    records = [
        ok("fp32", "cpu", 1, median=5_000, accuracy=0.99).with_(metrics=[auc | {"value": 0.99}]),
        ok("int8", "cpu", 1, median=2_000, accuracy=0.97).with_(metrics=[auc]),
        not_ok("unsupported", "No adapters found", "fp32", "gpu"),
        not_ok("unsupported", "No adapters found", "int8", "gpu"),
        not_ok("unsupported", "NNAPI is an Android delegate", "int8", "nnapi"),
    ]
    html = run_html("run-2", records)
    assert _count(html, r'<tr class="group">') == 2  # one line per reason
    assert "2 cell(s): No adapters found" in html and "fp32/gpu/t1, int8/gpu/t1" in html
    assert _count(html, r"<tr hidden data-cell=") == 3  # the cells stay, hidden
    assert _count(html, r"<tr data-cell=") == 2  # visible rows: the ok cells
    assert "auc (higher is better)" in html and "latency vs auc" in html
    rmse = {"name": "rmse", "value": 0.3, "higher_is_better": False, "units": "label units"}
    html = run_html("run-3", [ok("fp32", "cpu", 1, accuracy=0.3).with_(metrics=[rmse])])
    assert "rmse, label units (lower is better)" in html
