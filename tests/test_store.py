"""The results store on real SQLite and a real PostgreSQL server.

PostgreSQL runs when HARNESS_TEST_PG_URL is set; without it those tests skip, unless
HARNESS_REQUIRE_ALL=1 (CI), where a missing server is a failure. Each test gets its own
PostgreSQL schema (search_path in the URL), dropped afterwards. To run them locally
(Debian, as root; .ci/run does the same):

    apt-get install -y postgresql
    pg_ctlcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main start
    until pg_isready -q -h 127.0.0.1; do sleep 1; done
    su postgres -c "psql -q -c \\"ALTER USER postgres PASSWORD 'harness'\\""
    su postgres -c "dropdb --if-exists harness_test && createdb harness_test"
    export HARNESS_TEST_PG_URL=postgresql+psycopg2://postgres:harness@127.0.0.1:5432/harness_test
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import time

import numpy as np
import pytest
from cli_helpers import assert_user_error, harness, harness_argv
from sqlalchemy import select, update

from harness.cells import Cell, CellRecord
from harness.errors import HarnessError
from harness.measure.stats import latency_stats
from harness.run import RunSpec, plan_run
from harness.store import schema
from harness.store.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'results.db'}"
    return request.getfixturevalue("pg_url")


def _record(variant: str = "fp32", delegate: str = "cpu", threads: int = 1, **kw) -> CellRecord:
    samples = [10.0 + (i % 7) * 0.5 for i in range(50)]
    base = dict(
        cell=Cell("local", "digits", variant, delegate, threads),
        status="ok",
        model_sha256="ab" * 32,
        size_bytes=157_000,
        init_us=812.5,
        first_us=95.25,
        latency=latency_stats(samples),
        end_to_end=latency_stats([s + 2 for s in samples]),
        peak_rss_kb=43_008,
        accuracy=0.975,
        drift={"max_abs": 0.0, "mean_abs": 0.0, "top1_agreement": 1.0},
        samples={"invoke_us": samples, "e2e_us": [s + 2 for s in samples], "warmup_us": [50.0]},
        env={"runtime": "ai-edge-litert", "cpu_count": 2},
        extra={"sync_point": "invoke"},
    )
    return CellRecord(**(base | kw))


# ----------------------------------------------------------------------------- both backends


def test_schema_version_row(url):
    store = Store(url)
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.meta)).all()
    assert [tuple(r) for r in rows] == [("schema_version", str(schema.SCHEMA_VERSION))]
    Store(url)  # opening again neither fails nor adds a row
    with store.engine.connect() as conn:
        assert len(conn.execute(select(schema.meta)).all()) == 1


def test_a_version_1_store_is_migrated(url):
    """A store made before cell_rounds existed: opening it adds the table, says v2."""
    store = Store(url)
    with store.engine.begin() as conn:
        schema.cell_rounds.drop(conn)
        conn.execute(update(schema.meta).values(value="1"))
    run_id = store.create_run({"m": 1})
    store = Store(url)
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.meta.c.value)).scalar() == str(schema.SCHEMA_VERSION)
    assert store.add_round(run_id, _record().cell, 0, {"invoke_us": [1.0]})
    assert store.get_run(run_id).config == {"m": 1}


def test_rounds_are_kept_until_their_cell_is_committed(url):
    store = Store(url)
    run_id = store.create_run({})
    a, b = _record("fp32"), _record("int8")
    assert store.add_round(run_id, a.cell, 0, {"invoke_us": [1.0], "round": 0})
    assert store.add_round(run_id, a.cell, 1, {"invoke_us": [2.0], "round": 1})
    assert not store.add_round(run_id, a.cell, 1, {"invoke_us": [9.0]})  # never twice
    assert store.add_round(run_id, b.cell, 1, {"round": 1})  # round 0 missing: unusable
    held = store.rounds(run_id)
    assert [d["round"] for d in held[a.cell.key]] == [0, 1]
    assert held[b.cell.key] == []
    assert store.add_cell(run_id, a)
    assert a.cell.key not in store.rounds(run_id)  # folded into the record
    assert store.rounds(store.create_run({})) == {}


def test_a_newer_schema_is_refused(url):
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(update(schema.meta).values(value=str(schema.SCHEMA_VERSION + 1)))
    with pytest.raises(HarnessError, match="newer"):
        Store(url)


def test_run_header_lifecycle(url):
    store = Store(url)
    config = {"model": "build/digits", "threads": [1, 2], "timing": {"runs": 20}}
    run_id = store.create_run(config, command="harness run build/digits", tag="nightly")
    run = store.get_run(run_id)
    assert (run.status, run.finished_at, run.config, run.tag) == (
        "running",
        None,
        config,
        "nightly",
    )
    store.finish_run(run_id, "complete")
    run = store.get_run(run_id)
    assert run.status == "complete" and run.finished_at >= run.created_at.replace(
        tzinfo=run.finished_at.tzinfo
    )
    other = store.create_run({"model": "x"})
    assert other != run_id
    assert [r.run_id for r in store.list_runs()] == [other, run_id]
    with pytest.raises(HarnessError, match="no run"):
        store.get_run("20000101-000000-000000")


def test_cells_are_committed_one_by_one(url):
    writer, reader = Store(url), Store(url)  # separate engines, separate connections
    run_id = writer.create_run({})
    records = [_record("fp32", "cpu"), _record("int8", "xnnpack", 2, accuracy=0.9)]
    for i, rec in enumerate(records, 1):
        assert writer.add_cell(run_id, rec)
        assert len(reader.cells(run_id)) == i  # visible to another connection at once
    assert reader.cells(run_id) == records  # in commit order, every field back
    assert reader.done_keys(run_id) == {r.cell.key for r in records}


def test_a_cell_is_stored_at_most_once_per_run(url):
    store = Store(url)
    run_id, other = store.create_run({}), store.create_run({})
    assert store.add_cell(run_id, _record()) is True
    assert store.add_cell(run_id, _record(accuracy=0.1)) is False  # same key: refused
    assert store.add_cell(other, _record()) is True  # another run may hold it
    assert [r.accuracy for r in store.cells(run_id)] == [0.975]
    assert len(store.cells(other)) == 1


def test_unsupported_cells_and_outputs_round_trip(url):
    store = Store(url)
    run_id = store.create_run({})
    bad = CellRecord(
        Cell("local", "digits", "fp16", "gpu", 1), "unsupported", reason="No adapters found"
    )
    outputs = np.random.default_rng(0).random((360, 10), dtype=np.float32)
    buf = io.BytesIO()
    np.save(buf, outputs)
    assert store.add_cell(run_id, _record(), buf.getvalue())
    assert store.add_cell(run_id, bad)
    back_ok, back_bad = store.cells(run_id)
    assert back_bad == bad and back_bad.latency is None
    blob = store.outputs(run_id, back_ok.cell.key)
    np.testing.assert_array_equal(np.load(io.BytesIO(blob)), outputs)
    assert store.outputs(run_id, bad.cell.key) is None
    assert store.outputs(run_id, "no|such|key") is None


# ----------------------------------------------------------------------------- SQLite only


def test_a_new_sqlite_file_is_owner_only(tmp_path):
    path = tmp_path / "new" / "dir" / "results.db"
    Store(f"sqlite:///{path}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_default_store_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    assert Store().url == f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.delenv("HARNESS_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    Store()
    assert (tmp_path / "xdg" / "harness" / "results.db").is_file()


@pytest.mark.parametrize(
    "bad_url, words",
    [
        ("nosuchdb://host/db", ["bad store URL"]),
        ("sqlite:////{tmp}/file.txt/results.db", ["cannot create store directory"]),
        ("sqlite:////{tmp}/notadb.db", ["store"]),
    ],
)
def test_unusable_store_is_one_line_error(bad_url, words, variants, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "notadb.db").write_bytes(np.random.default_rng(0).bytes(8192))
    bad_url = bad_url.format(tmp=str(tmp_path).lstrip("/"))
    with pytest.raises(HarnessError):
        Store(bad_url)
    proc = harness("run", variants.manifest_path.parent, "--runs", "2", "--store", bad_url)
    assert_user_error(proc, *words)


# ----------------------------------------------------------------------------- kill and resume


def _wait_for_cells(url: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        runs = Store(url).list_runs()
        if runs and Store(url).done_keys(runs[0].run_id):
            return runs[0].run_id
        time.sleep(0.05)
    raise AssertionError("no cell was stored in time")


@pytest.mark.slow
def test_a_killed_run_keeps_its_cells_and_resume_finishes_it(url, variants, digits, tmp_path):
    model_dir = variants.manifest_path.parent
    args = ["--variants", "fp32,int8", "--delegates", "cpu,xnnpack", "--threads", "1,2"]
    args += ["--runs", "20", "--warmup", "2", "--min-secs", "0.5"]
    args += ["--eval", digits / "eval.npz", "--store", url]
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115 - closed below
    with log:
        proc = subprocess.Popen(
            harness_argv("run", model_dir, *args),
            stdout=log,
            stderr=log,
            start_new_session=True,  # its runner child dies with it
        )
        try:
            run_id = _wait_for_cells(url, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = Store(url)
    assert store.get_run(run_id).status == "running"  # nobody got to finish it
    kept = store.cells(run_id)
    _, plan = plan_run(RunSpec.from_dict(store.get_run(run_id).config))
    assert len(plan) == 8
    assert 1 <= len(kept) < len(plan)
    for r in kept:  # every stored row is a whole cell
        assert r.status == "ok", r.reason
        assert r.latency.n == len(r.samples["invoke_us"]) == len(r.samples["e2e_us"]) >= 20
        assert r.end_to_end.n == r.latency.n
        assert r.accuracy >= 0.9 and r.drift is not None
        assert store.outputs(run_id, r.cell.key)

    proc = harness("run", "--resume", run_id, "--store", url, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run_id"] == run_id and doc["status"] == "complete"
    final = store.cells(run_id)
    keys = [r.cell.key for r in final]
    assert len(keys) == len(set(keys)) == len(plan) == len(doc["cells"])
    assert set(keys) == {c.key for c in plan}
    assert final[: len(kept)] == kept  # the finished cells were not measured again
    for r in final:
        assert r.status == "ok" and r.accuracy >= 0.9
        assert r.drift is not None  # the reference came back from the store
        assert 0.0 <= r.drift["top1_agreement"] <= 1.0
    # resuming a complete run measures nothing
    again = harness("run", "--resume", run_id, "--store", url, "--json")
    assert again.returncode == 0 and store.cells(run_id) == final


def test_a_version_2_store_gains_the_metrics_column(url):
    """A store made before metrics were chosen: the column is added, old rows read back
    with no metrics, new rows keep theirs."""
    from sqlalchemy import text

    store = Store(url)
    old_run = store.create_run({})
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE cells DROP COLUMN metrics"))
        conn.execute(update(schema.meta).values(value="2"))
        conn.execute(
            text(
                "INSERT INTO cells (run_id, cell_key, device, model, variant, delegate, "
                "threads, status, accuracy, samples, env, extra, created_at) VALUES "
                "(:r, 'k', 'local', 'm', 'fp32', 'cpu', 1, 'ok', 0.9, '{}', '{}', '{}', "
                "CURRENT_TIMESTAMP)"
            ),
            {"r": old_run},
        )
    store = Store(url)
    [old] = store.cells(old_run)
    assert (old.accuracy, old.metrics) == (0.9, [])
    metrics = [{"name": "rmse", "value": 0.25, "higher_is_better": False, "units": "label units"}]
    run_id = store.create_run({})
    store.add_cell(run_id, _record(metrics=metrics, accuracy=0.25))
    assert store.cells(run_id)[0].metrics == metrics
