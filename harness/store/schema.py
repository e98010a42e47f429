"""SQLAlchemy Core schema of the results store (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 4
# Migrations, by the version they lead to; each runs once, in order, when an older
# store is opened (create_all has already added any new table by then).
#   2: cell_rounds (additive: nothing to rewrite)
#   3: cells.metrics (a nullable JSON column, added by ALTER TABLE)
#   4: cells.batch, cells.concurrency (nullable integers, ALTER TABLE; NULL reads as 1)

metadata = MetaData()

meta = Table(
    "harness_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # running | complete | interrupted
    Column("command", Text),
    Column("config", JSON, nullable=False),
    Column("tag", String(128)),
)

cells = Table(
    "cells",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id"), nullable=False, index=True),
    Column("cell_key", String(512), nullable=False),
    Column("device", String(256), nullable=False),
    Column("model", String(256), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("delegate", String(32), nullable=False),
    Column("threads", Integer, nullable=False),
    Column("batch", Integer),  # samples per invoke; NULL in stores before v4 (= 1)
    Column("concurrency", Integer),  # instances at once; NULL before v4 (= 1)
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("model_sha256", String(64)),
    Column("size_bytes", Integer),
    Column("init_us", Float),
    Column("first_us", Float),
    Column("latency", JSON),
    Column("end_to_end", JSON),
    Column("peak_rss_kb", Integer),
    Column("accuracy", Float),
    Column("drift", JSON),
    Column("metrics", JSON),  # chosen metrics, primary first; NULL in stores before v3
    Column("samples", JSON, nullable=False),
    Column("env", JSON, nullable=False),
    Column("extra", JSON, nullable=False),
    Column("outputs", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A cell is stored at most once per run: resume and retries can never duplicate it.
    UniqueConstraint("run_id", "cell_key", name="uq_cells_run_cell"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id"), nullable=False, index=True),
    Column("device", String(256), nullable=False),
    Column("phase", String(16), nullable=False),  # before | after
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
)

# The rounds a cell has finished, kept until the cell itself is committed (then
# deleted in the same transaction): a sweep that dies in round 3 resumes at round 3.
cell_rounds = Table(
    "cell_rounds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.run_id"), nullable=False, index=True),
    Column("cell_key", String(512), nullable=False),
    Column("round", Integer, nullable=False),
    Column("doc", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "cell_key", "round", name="uq_cell_rounds"),
)
