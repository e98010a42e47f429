"""The HTML report in a real headless Chromium: scripts run clean, charts populated, PNGs."""

from __future__ import annotations

import json
import os
import re

import pytest
from cli_helpers import assert_user_error, harness

from harness.measure.series import load_trend
from harness.report.html import run_charts, run_html
from harness.report.png import write_png
from harness.report.recommend import Budget, recommend
from harness.report.trend import trend_html
from harness.store.store import Store

from .builders import not_ok, ok
from .chromium import distinct_colours, dump_dom, load, png_pixels, require_chromium
from .test_html import HOSTILE


def _records():
    return [
        ok("fp32", "cpu", 1, median=2000, accuracy=0.98),
        ok("int8", "xnnpack", 2, median=600, accuracy=0.97, model=HOSTILE),
        ok("fp16", "gpu", 1, median=900, accuracy=None, extra={"fully_accelerated": False}),
        ok("dynamic", "cpu", 4, median=800, accuracy=0.975, device="board"),
        not_ok("unsupported", HOSTILE),
    ]


def _assert_clean(dom: str, console: list[str]) -> None:
    assert console == [], console
    assert 'data-ready="1"' in dom  # our script ran to its end (the CSP let it run)
    assert "<title>" not in dom.split("</head>", 1)[1]  # every chart title became a tooltip


def test_run_report_loads_clean_with_every_point(tmp_path):
    require_chromium()
    records = _records()
    page = tmp_path / "report.html"
    page.write_text(run_html("run-1", records, picks=recommend(records, Budget(1_000))))
    dom, console = dump_dom(page, tmp_path)
    _assert_clean(dom, console)
    assert len(re.findall(r'<g class="pt" data-cell="[^"]+" tabindex="0" data-tip="', dom)) == 4
    assert len(re.findall(r"<tr (hidden=\"\" )?data-cell=", dom)) == 5  # unsupported: hidden
    assert dom.count('<svg class="chart scatter"') == 2  # one per device
    assert dom.count("<script") == 1 and "<script>alert" not in dom  # hostile text stays text


def test_screenshot_of_the_report_is_not_blank(tmp_path):
    require_chromium()
    page = tmp_path / "report.html"
    page.write_text(run_html("run-1", _records()))
    shot = tmp_path / "page.png"
    load(page, tmp_path, f"--screenshot={shot}", "--window-size=1100,1400")
    width, height, _ = png_pixels(shot)
    assert (width, height) == (1100, 1400)
    assert distinct_colours(shot) > 20


def test_png_export_of_the_charts(tmp_path):
    require_chromium()
    out = write_png(run_charts(_records()), tmp_path / "charts.png")
    width, height, _ = png_pixels(out)
    assert width > 700 and height > 800  # two devices x (scatter + breakdown)
    assert distinct_colours(out) > 20


def test_lab_trend_page_loads_clean(tmp_path, store_url):
    require_chromium()
    store = Store(store_url)
    for night in range(8):
        run_id = store.create_run({})
        store.add_cell(run_id, ok(median=1000 * (1.3 if night >= 4 else 1.0), seed=night))
    page = tmp_path / "trend.html"
    page.write_text(trend_html(load_trend(store, "digits", "phone")))
    dom, console = dump_dom(page, tmp_path)
    _assert_clean(dom, console)
    assert dom.count('<g class="change-point" data-tip="change point:') == 1
    assert dom.count('<g class="pt" data-tip="run ') == 8


def test_png_without_chromium_is_one_line(tmp_path, store_url):
    store = Store(store_url)
    run_id = store.create_run({})
    store.add_cell(run_id, ok())
    env = dict(os.environ) | {"HARNESS_CHROMIUM": "no-such-browser-here"}
    proc = harness("report", run_id, "--store", store_url, "--png", tmp_path / "x.png", env=env)
    assert_user_error(proc, "--png needs headless Chromium")


@pytest.mark.slow
def test_the_digits_run_renders_in_chromium(variants, digits, store_url, tmp_path):
    """The demo's run, end to end: run -> report --html --png -> Chromium."""
    require_chromium()
    proc = harness(
        "run", variants.manifest_path.parent, "--delegates", "cpu,xnnpack,gpu,nnapi",
        "--threads", "1", "--runs", "30", "--warmup", "3", "--eval", digits / "eval.npz",
        "--store", store_url, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    records = Store(store_url).cells(run_id)
    n_ok = sum(r.status == "ok" for r in records)
    assert n_ok >= 8  # 4 variants x cpu, xnnpack at least
    page, png = tmp_path / "digits.html", tmp_path / "digits.png"
    proc = harness("report", run_id, "--store", store_url, "--html", page, "--png", png,
                   "--slo", "1s")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    dom, console = dump_dom(page, tmp_path)
    _assert_clean(dom, console)
    assert len(re.findall(r'<g class="pt" data-cell=', dom)) == n_ok
    assert len(re.findall(r'<g class="bar" data-cell=', dom)) == n_ok
    assert len(re.findall(r"<tr (hidden=\"\" )?data-cell=", dom)) == len(records)
    for status in ("unsupported", "failed"):
        assert dom.count(f'class="st st-{status}"') == sum(r.status == status for r in records)
    assert distinct_colours(png) > 20
    shot = tmp_path / "digits-page.png"
    load(page, tmp_path, f"--screenshot={shot}", "--window-size=1100,1600")
    assert distinct_colours(shot) > 20
