"""The results store: append-only runs and cells. It stores; it never computes."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, make_url, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError, IntegrityError, SQLAlchemyError

from harness.cells import Cell, CellRecord, LatencyStats
from harness.errors import HarnessError
from harness.store import schema

STORE_ENV = "HARNESS_STORE"


@dataclass(frozen=True)
class RunInfo:
    """One run's header row."""

    run_id: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    command: str | None
    config: dict
    tag: str | None


def default_store_url() -> str:
    """$HARNESS_STORE, else an SQLite file under the user's data directory."""
    if url := os.environ.get(STORE_ENV):
        return url
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return f"sqlite:///{base / 'harness' / 'results.db'}"


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a random suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class Store:
    """A handle on one results database."""

    def __init__(self, url: str | None = None):
        self.url = url or default_store_url()
        self.display_url = _without_password(self.url)  # for messages and logs
        self.engine = _connect(self.url)
        self._ensure_schema()

    # -- runs ---------------------------------------------------------------------

    def create_run(
        self,
        config: dict,
        command: str | None = None,
        tag: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Insert a run header with status 'running' and return its id."""
        run_id = run_id or new_run_id()
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.runs).values(
                    run_id=run_id,
                    created_at=_now(),
                    status="running",
                    # argv may hold non-UTF-8 file names (lone surrogates): keep them readable
                    command=command.encode("utf-8", "surrogateescape").decode(
                        "utf-8", "backslashreplace"
                    )
                    if command
                    else command,
                    config=config,
                    tag=tag,
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str = "complete") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.run_id == run_id)
                .values(status=status, finished_at=_now())
            )

    def get_run(self, run_id: str) -> RunInfo:
        """The run's header; HarnessError when no such run exists."""
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).first()
        if row is None:
            raise HarnessError(f"no run {run_id!r} in {self.display_url}")
        return RunInfo(**row._mapping)

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        q = select(schema.runs).order_by(schema.runs.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [RunInfo(**r._mapping) for r in conn.execute(q)]

    def find_runs(self, tag: str | None = None, tag_prefix: str | None = None) -> list[RunInfo]:
        """Runs with exactly `tag`, or a tag starting with `tag_prefix`; oldest first."""
        q = select(schema.runs).order_by(schema.runs.c.created_at, schema.runs.c.run_id)
        if tag is not None:
            q = q.where(schema.runs.c.tag == tag)
        if tag_prefix is not None:
            q = q.where(schema.runs.c.tag.startswith(tag_prefix, autoescape=True))
        with self.engine.connect() as conn:
            return [RunInfo(**r._mapping) for r in conn.execute(q)]

    # -- cells --------------------------------------------------------------------

    def add_cell(self, run_id: str, record: CellRecord, outputs: bytes | None = None) -> bool:
        """Commit one finished cell at once; False if the run already holds it."""
        c = record.cell
        row = {
            "run_id": run_id,
            "cell_key": c.key,
            "device": c.device,
            "model": c.model,
            "variant": c.variant,
            "delegate": c.delegate,
            "threads": c.threads,
            "batch": c.batch,
            "concurrency": c.concurrency,
            "status": record.status,
            "reason": record.reason,
            "model_sha256": record.model_sha256,
            "size_bytes": record.size_bytes,
            "init_us": record.init_us,
            "first_us": record.first_us,
            "latency": record.latency.to_dict() if record.latency else None,
            "end_to_end": record.end_to_end.to_dict() if record.end_to_end else None,
            "peak_rss_kb": record.peak_rss_kb,
            "accuracy": record.accuracy,
            "drift": record.drift,
            "metrics": list(record.metrics) or None,
            "samples": record.samples,
            "env": record.env,
            "extra": record.extra,
            "outputs": outputs,
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.cells).values(**row))
                conn.execute(  # its rounds live on in the record now
                    delete(schema.cell_rounds).where(
                        schema.cell_rounds.c.run_id == run_id,
                        schema.cell_rounds.c.cell_key == c.key,
                    )
                )
        except IntegrityError:
            return False
        return True

    def add_round(self, run_id: str, cell: Cell, round_index: int, doc: dict) -> bool:
        """Commit one finished round of a cell not yet finished; False if already held."""
        row = {
            "run_id": run_id,
            "cell_key": cell.key,
            "round": round_index,
            "doc": doc,
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.cell_rounds).values(**row))
        except IntegrityError:
            return False
        return True

    def rounds(self, run_id: str) -> dict[str, list[dict]]:
        """cell key -> the raw docs of its finished rounds 0, 1, ... (gapless prefix)."""
        q = (
            select(schema.cell_rounds)
            .where(schema.cell_rounds.c.run_id == run_id)
            .order_by(schema.cell_rounds.c.cell_key, schema.cell_rounds.c.round)
        )
        out: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                docs = out.setdefault(r.cell_key, [])
                if r.round == len(docs):
                    docs.append(r.doc)
        return out

    def cells(self, run_id: str) -> list[CellRecord]:
        """Every stored cell of a run, in the order they were committed."""
        q = select(schema.cells).where(schema.cells.c.run_id == run_id).order_by(schema.cells.c.id)
        with self.engine.connect() as conn:
            return [_record(r._mapping) for r in conn.execute(q)]

    def done_keys(self, run_id: str) -> set[str]:
        q = select(schema.cells.c.cell_key).where(schema.cells.c.run_id == run_id)
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(q)}

    def outputs(self, run_id: str, cell_key: str) -> bytes | None:
        q = select(schema.cells.c.outputs).where(
            schema.cells.c.run_id == run_id, schema.cells.c.cell_key == cell_key
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return row[0] if row else None

    # -- device snapshots ---------------------------------------------------------

    def add_snapshot(self, run_id: str, device: str, phase: str, data: dict) -> None:
        """Record the device's state (props, battery, thermal, governor) before/after."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.snapshots).values(
                    run_id=run_id, device=device, phase=phase, taken_at=_now(), data=data
                )
            )

    def snapshots(self, run_id: str) -> list[dict]:
        """Snapshots of a run in the order taken: {device, phase, taken_at, data}."""
        q = (
            select(schema.snapshots)
            .where(schema.snapshots.c.run_id == run_id)
            .order_by(schema.snapshots.c.id)
        )
        with self.engine.connect() as conn:
            return [
                {k: r._mapping[k] for k in ("device", "phase", "taken_at", "data")}
                for r in conn.execute(q)
            ]

    # -- schema -------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        try:
            schema.metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                ).first()
                if row is None:
                    conn.execute(
                        insert(schema.meta).values(
                            key="schema_version", value=str(schema.SCHEMA_VERSION)
                        )
                    )
                elif int(row[0]) > schema.SCHEMA_VERSION:
                    raise HarnessError(
                        f"store {self.display_url} has schema {row[0]}, newer than this "
                        f"harness understands ({schema.SCHEMA_VERSION}); upgrade"
                    )
                elif int(row[0]) < schema.SCHEMA_VERSION:
                    # v2 only added a table, which create_all did; v3 adds a column
                    _add_missing_columns(conn)
                    conn.execute(
                        update(schema.meta)
                        .where(schema.meta.c.key == "schema_version")
                        .values(value=str(schema.SCHEMA_VERSION))
                    )
        except DatabaseError as exc:  # also "file is not a database"
            raise HarnessError(f"cannot open store {self.display_url}: {_first_line(exc)}") from exc


def _add_missing_columns(conn) -> None:
    """ALTER TABLE for columns a newer schema added to an existing table (v3: metrics;
    v4: batch, concurrency)."""
    from sqlalchemy import inspect as sa_inspect

    have = {c["name"] for c in sa_inspect(conn).get_columns("cells")}
    # fixed DDL statements: no user value goes into them
    for name, ddl in (
        ("metrics", "ALTER TABLE cells ADD COLUMN metrics JSON"),
        ("batch", "ALTER TABLE cells ADD COLUMN batch INTEGER"),
        ("concurrency", "ALTER TABLE cells ADD COLUMN concurrency INTEGER"),
    ):
        if name not in have:
            conn.execute(text(ddl))


def _connect(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise HarnessError(
                    f"cannot create store directory {path.parent}: {exc.strerror}"
                ) from exc
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # owner-only from birth
                os.close(fd)
    try:
        return create_engine(url, future=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise HarnessError(f"bad store URL {_without_password(url)!r}: {_first_line(exc)}") from exc


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return url


def _record(m) -> CellRecord:
    return CellRecord(
        cell=Cell(
            m["device"],
            m["model"],
            m["variant"],
            m["delegate"],
            m["threads"],
            m["batch"] or 1,  # NULL: stored before v4, one sample, one instance
            m["concurrency"] or 1,
        ),
        status=m["status"],
        reason=m["reason"],
        model_sha256=m["model_sha256"],
        size_bytes=m["size_bytes"],
        init_us=m["init_us"],
        first_us=m["first_us"],
        latency=LatencyStats.from_dict(m["latency"]) if m["latency"] else None,
        end_to_end=LatencyStats.from_dict(m["end_to_end"]) if m["end_to_end"] else None,
        peak_rss_kb=m["peak_rss_kb"],
        accuracy=m["accuracy"],
        drift=m["drift"],
        metrics=m["metrics"] or [],
        samples=m["samples"] or {},
        env=m["env"] or {},
        extra=m["extra"] or {},
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
