"""Batch and concurrency as cell dimensions: planning, records, store, reports, and real
runs through the CLI on the digits CNN (a dynamic batch) and a fixed-batch copy of it."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_user_error, harness
from sqlalchemy import text, update

from harness.cells import Cell, CellRecord, LatencyStats
from harness.errors import HarnessError
from harness.lab.plan import parse_batches, parse_concurrency
from harness.measure.stats import latency_stats
from harness.measure.summarize import summarize
from harness.report.markdown import run_markdown
from harness.report.recommend import Budget, recommend
from harness.store import schema
from harness.store.store import Store


def _record(batch=1, concurrency=1, samples=(100.0, 110.0, 120.0), extra=None) -> CellRecord:
    cell = Cell("local", "digits", "fp32", "xnnpack", 1, batch, concurrency)
    return CellRecord(
        cell, "ok", latency=latency_stats(list(samples)), extra=extra or {}, size_bytes=10
    )


def test_keys_of_batch_one_cells_are_the_keys_stored_before_batch_existed():
    # resume and compare match stored runs by key: batch 1, concurrency 1 keep theirs
    assert Cell("d", "m", "fp32", "cpu", 2).key == "d|m|fp32|cpu|2"
    c = Cell("d", "m", "fp32", "cpu", 2, 8, 4)
    assert c.key == "d|m|fp32|cpu|2|b8|c4" and c.setting == "fp32/cpu/t2/b8/c4"
    assert len({Cell("d", "m", "v", "x", 1, b).key for b in (1, 8, 32)}) == 3


def test_per_sample_latency_and_throughput():
    r = _record(batch=8, samples=(800.0, 800.0, 800.0))
    assert r.per_sample_us == pytest.approx(100.0)
    assert r.throughput_sps == pytest.approx(10_000.0)  # 8 samples per 800 µs
    # a load cell's throughput is what its window measured, not derived from the median
    load = _record(extra={"throughput_sps": 12_345.0})
    assert load.throughput_sps == 12_345.0


@pytest.mark.parametrize(
    "parse, text_, words",
    [
        (parse_batches, "0", "positive"),
        (parse_batches, "1,x", "positive"),
        (parse_concurrency, "65", "above the limit of 64"),
        (parse_concurrency, "0", "positive"),
    ],
)
def test_bad_sweep_values_are_refused(parse, text_, words):
    with pytest.raises(HarnessError, match=words):
        parse(text_)
    assert parse_concurrency("1,64") == (1, 64)


def test_a_load_window_gives_the_aggregate_throughput():
    cell = Cell("local", "digits", "fp32", "xnnpack", 1, 2, 2)
    raw = {
        "status": "ok",
        "invoke_us": [50.0] * 40,
        "e2e_us": [60.0] * 40,
        "load": {"instances": 2, "requests": 40, "samples": 80, "window_s": 0.002},
    }
    r = summarize(cell, "sha", 10, raw, None, None)
    assert r.extra["load"]["instances"] == 2
    assert r.throughput_sps == pytest.approx(40_000.0)  # 80 samples over 2 ms
    bad = summarize(cell, "sha", 10, raw | {"load": {"samples": 80, "window_s": 0}}, None, None)
    assert "throughput_sps" not in bad.extra  # no made-up rate from a broken window


def test_recommend_min_throughput_picks_the_batch_that_reaches_it():
    one = _record(batch=1, samples=(100.0,) * 3)  # 10k samples/s
    eight = _record(batch=8, samples=(400.0,) * 3)  # 20k samples/s
    [pick] = recommend([one, eight], Budget(1e6, min_throughput_sps=15_000))
    assert pick.best.cell.batch == 8 and pick.eligible == 1
    [none] = recommend([one, eight], Budget(1e6, min_throughput_sps=50_000))
    assert not none.met and "50000 samples/s" in " ".join(none.notes)


def test_markdown_shows_the_sweep_columns_only_when_swept():
    plain = run_markdown("r", [_record()])
    assert "samples/s" not in plain
    swept = run_markdown("r", [_record(), _record(batch=8, samples=(800.0,) * 3)])
    assert "| batch | concurrency | per sample | samples/s |" in swept
    assert "| 8 | 1 | 100 µs | 10000 |" in swept


def test_a_version_3_store_gains_batch_and_concurrency(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    old_run = store.create_run({})
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE cells DROP COLUMN batch"))
        conn.execute(text("ALTER TABLE cells DROP COLUMN concurrency"))
        conn.execute(update(schema.meta).values(value="3"))
        conn.execute(
            text(
                "INSERT INTO cells (run_id, cell_key, device, model, variant, delegate, "
                "threads, status, samples, env, extra, created_at) VALUES "
                "(:r, 'local|m|fp32|cpu|1', 'local', 'm', 'fp32', 'cpu', 1, 'ok', '{}', "
                "'{}', '{}', CURRENT_TIMESTAMP)"
            ),
            {"r": old_run},
        )
    store = Store(url)
    [old] = store.cells(old_run)
    assert (old.cell.batch, old.cell.concurrency) == (1, 1)
    assert old.cell.key == "local|m|fp32|cpu|1"
    run_id = store.create_run({})
    store.add_cell(run_id, _record(batch=8, concurrency=2))
    [new] = store.cells(run_id)
    assert (new.cell.batch, new.cell.concurrency) == (8, 2)
    assert isinstance(new.latency, LatencyStats)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--batch", "0"], "batch sizes must be positive integers"),
        (["--concurrency", "65"], "concurrency 65 is above the limit of 64"),
        (["--concurrency", "2,x"], "concurrency levels must be positive integers"),
    ],
)
def test_bad_batch_and_concurrency_are_one_line_before_any_run(variants, store_url, args, words):
    proc = harness("run", variants.manifest_path.parent, "--store", store_url, *args)
    assert_user_error(proc, words)
    assert Store(store_url).list_runs() == []  # nothing started, nothing half-stored


@pytest.fixture(scope="module")
def fixed_batch_model(digits, tmp_path_factory):
    """The digits CNN re-exported with a FIXED batch of 1 in its input signature."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(digits / "digits.keras")
    image = keras.Input((8, 8, 1), batch_size=1, name="image")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(image, model(image)))
    path = tmp_path_factory.mktemp("fixed") / "digits_fixed.tflite"
    path.write_bytes(converter.convert())
    return path


def _json_run(*args) -> dict:
    proc = harness("run", *args, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_batch_sweep_end_to_end(variants, digits, fixed_batch_model, store_url):
    """Real runs of the dynamic-batch digits CNN at batch 1 and 8 (same accuracy, per
    sample and throughput figures consistent), the fixed-batch copy refused at batch 8
    (one row with the reason, batch 1 still measured), compare matching by batch."""
    doc = _json_run(
        variants.manifest_path.parent,
        "--variants",
        "fp32",
        "--delegates",
        "xnnpack",
        "--batch",
        "1,8",
        "--runs",
        "30",
        "--rounds",
        "2",
        "--eval",
        digits / "eval.npz",
        "--store",
        store_url,
    )
    cells = {c["batch"]: c for c in doc["cells"]}
    assert set(cells) == {1, 8} and all(c["status"] == "ok" for c in cells.values())
    for batch, c in cells.items():
        median = c["latency_us"]["median"]
        assert c["per_sample_us"] == pytest.approx(median / batch)
        assert c["throughput_sps"] == pytest.approx(batch * 1e6 / median)
        assert c["concurrency"] == 1
    # the eval pass ran batches of 8 (the last one padded): the same outputs, to float noise
    assert cells[8]["accuracy"] == cells[1]["accuracy"] > 0.9
    assert cells[8]["drift"]["max_abs"] < 1e-4
    # stored with the batch and shown by it
    shown = harness("report", doc["run_id"], "--store", store_url)
    assert shown.returncode == 0 and "batch" in shown.stdout and "samp/s" in shown.stdout
    same = harness("compare", doc["run_id"], doc["run_id"], "--store", store_url, "--json")
    assert same.returncode == 0, same.stderr
    assert sorted(c["batch"] for c in json.loads(same.stdout)["cells"]) == [1, 8]

    fixed = _json_run(
        fixed_batch_model, "--delegates", "xnnpack", "--batch", "1,8", "--runs", "10",
        "--rounds", "1", "--store", store_url,
    )  # fmt: skip
    rows = {c["batch"]: c for c in fixed["cells"]}
    assert rows[1]["status"] == "ok"
    assert rows[8]["status"] == "unsupported" and rows[8]["latency_us"]["median"] is None
    assert "fixed batch of 1" in rows[8]["reason"] and "batch 8" in rows[8]["reason"]


@pytest.mark.slow
def test_concurrency_sweep_end_to_end(variants, store_url):
    """N interpreter instances at once for a fixed window: every request's latency kept,
    each instance served requests, the aggregate throughput is requests x batch over
    the window, and a concurrency of 2 does not change the cell's batch."""
    doc = _json_run(
        variants.manifest_path.parent,
        "--variants",
        "int8",
        "--delegates",
        "xnnpack",
        "--concurrency",
        "1,2",
        "--batch",
        "2",
        "--min-secs",
        "0.6",
        "--rounds",
        "2",
        "--store",
        store_url,
    )
    cells = {c["concurrency"]: c for c in doc["cells"]}
    assert set(cells) == {1, 2}
    for n, c in cells.items():
        assert c["status"] == "ok", c["reason"]
        load = c["extra"]["load"]
        assert load["instances"] == n and load["windows"] == 2
        assert c["latency_us"]["n"] == load["requests"]  # every request's latency kept
        assert load["samples"] == 2 * load["requests"]
        assert 0.5 <= load["window_s"] < 5  # two windows of 0.3 s, plus the last request
        assert c["throughput_sps"] == pytest.approx(load["samples"] / load["window_s"])
        assert c["latency_us"]["p99"] >= c["latency_us"]["median"] > 0
    store = Store(store_url)
    [two] = [r for r in store.cells(doc["run_id"]) if r.cell.concurrency == 2]
    lanes = two.extra["load"]["per_instance"]
    assert len(lanes) == 2 and all(n > 0 for n in lanes)  # both instances served
    assert sum(lanes) == len(two.samples["invoke_us"]) == two.extra["load"]["requests"]
