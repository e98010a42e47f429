"""The demo's HTML report (`make demo`: breast-cancer MLP, four variants, cpu, xnnpack,
gpu and nnapi at 1 and 2 threads, AUC primary) as its user sees it: laid out by real
headless Chromium at 1400 px wide."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_helpers import harness

from harness.store.store import Store

from .chromium import require_chromium
from .layout import measure

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """The demo's run and report, as the Makefile makes them (fewer timed runs)."""
    import breast_cancer

    require_chromium()
    root = tmp_path_factory.mktemp("demo")
    breast_cancer.train(root / "model")
    conv = harness(
        "convert", root / "model" / "breast_cancer.keras", "-o", root / "variants",
        "--variants", "fp32,fp16,dynamic,int8", "--calibration",
        root / "model" / "calibration.npz", "--int8-io",
    )  # fmt: skip
    assert conv.returncode == 0, conv.stderr
    store_url = f"sqlite:///{root / 'results.db'}"
    run = harness(
        "run", root / "variants", "--device", "local", "--delegates", "cpu,xnnpack,gpu,nnapi",
        "--threads", "1,2", "--runs", "20", "--rounds", "3", "--eval",
        root / "model" / "eval.npz", "--metric", "auc", "--metric", "f1", "--metric", "snr",
        "--store", store_url,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    page = root / "report.html"
    rep = harness("report", "latest", "--store", store_url, "--html", page)
    assert rep.returncode == 0, rep.stderr
    store = Store(store_url)
    records = store.cells(store.list_runs(1)[0].run_id)
    return page, records, measure(page, root, width=1400)


@pytest.mark.slow
def test_cells_table_fits_or_scrolls_inside_its_box_with_the_metric_in_view(demo_report):
    _, _, layout = demo_report
    assert layout["viewport"] == 1400
    assert layout["page_scroll_width"] <= layout["viewport"]  # the page never scrolls sideways
    (table,) = layout["tables"]
    holder = table["holder"]
    assert holder["left"] >= 0 and holder["right"] <= layout["viewport"]
    fits = table["table_width"] <= table["holder_client_width"]
    scrolls = (
        table["overflow_x"] in ("auto", "scroll")
        and table["holder_scroll_width"] > (table["holder_client_width"])
    )
    assert fits or scrolls, table
    columns = dict(table["columns"])
    # the primary metric, named by itself, is in view beside the latency without scrolling
    assert "auc" in columns and "accuracy" not in columns
    assert columns["auc"]["right"] <= holder["right"], (columns["auc"], holder)
    # every cell sits under its own heading
    names = [name for name, _ in table["columns"]]
    for classes in table["row_classes"]:
        assert len(classes) == len(names)
        assert "st" in classes[names.index("status")].split()
        assert classes[names.index("reason")] == "reason"


@pytest.mark.slow
def test_unsupported_cells_are_grouped_under_their_reason(demo_report):
    _, records, layout = demo_report
    (table,) = layout["tables"]
    reasons: dict[str, int] = {}
    for r in records:
        if r.status == "unsupported":
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    assert sum(reasons.values()) == 16 and len(reasons) == 2  # gpu: no adapter; nnapi: Linux
    assert len(table["groups"]) == len(reasons)
    for reason, count in reasons.items():
        (group,) = [g for g in table["groups"] if reason in g]
        assert f"{count} cell(s)" in group
    assert table["hidden_rows"] == sum(reasons.values())
    assert table["visible_rows"] == sum(r.status != "unsupported" for r in records)


@pytest.mark.slow
def test_the_scatter_shows_the_metric_trade_off(demo_report):
    _, records, layout = demo_report
    (points,) = layout["scatters"]
    ok = [r for r in records if r.status == "ok"]
    assert len(points) == len(ok)
    assert len({round(r.accuracy, 4) for r in ok}) > 1  # the variants differ in AUC ...
    ys = [p["y"] for p in points]
    assert max(ys) - min(ys) > 50  # ... and the points show it: not one flat line (px)
