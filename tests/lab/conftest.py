"""Fixtures for the lab tests: lab files, stores (SQLite and PostgreSQL), loopback devices."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.cells import Cell, CellRecord
from harness.measure.stats import latency_stats


def write_lab(tmp_path: Path, body: str, name: str = "lab.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_url(request, tmp_path):
    """The same test on SQLite and on PostgreSQL (skipped without a server, unless CI)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lab.db'}"
    return request.getfixturevalue("pg_url")


def record(
    device,
    model,
    variant,
    delegate,
    median_us,
    n=40,
    spread=0.01,
    seed=0,
    rounds=8,
    round_spread=0.005,
    **kw,
):
    """An ok CellRecord with `n` log-normal samples around `median_us`, in `rounds` rounds
    each at its own level (log-normal, `round_spread`)."""
    rng = np.random.default_rng(seed)
    sizes = [n // rounds + (r < n % rounds) for r in range(rounds)]
    levels = np.repeat(np.exp(rng.normal(0, round_spread, rounds)), sizes)
    samples = (median_us * levels * np.exp(rng.normal(0, spread, n))).tolist()
    return CellRecord(
        Cell(device, model, variant, delegate, 1),
        "ok",
        latency=latency_stats(samples),
        samples={"invoke_us": samples},
        extra={"round_sizes": sizes},
        **kw,
    )


class Boards:
    """Loopback `serve-device` daemons (RSA auth), one root each, restartable on their port."""

    def __init__(self, tmp_path: Path, public_key: Path, count: int):
        from harness.adbd.server import AdbDaemon

        self._make = AdbDaemon
        self.tmp, self.key = tmp_path, public_key
        self.daemons = [self._start(i, 0) for i in range(count)]

    def _config(self, i: int, port: int):
        from harness.adbd.server import DaemonConfig

        return DaemonConfig(
            port=port,
            root=self.tmp / f"board{i}",
            authorized_keys=self.key,
            props={"ro.harness.python": sys.executable},
        )

    def _start(self, i: int, port: int):
        daemon = self._make(self._config(i, port))
        daemon.start()
        return daemon

    @property
    def serials(self) -> list[str]:
        return [d.serial for d in self.daemons]

    def stop(self, i: int) -> None:
        self.daemons[i].stop()

    def restart(self, i: int) -> None:
        self.daemons[i] = self._start(i, self.daemons[i].port)

    def close(self) -> None:
        for d in self.daemons:
            d.stop()


@pytest.fixture
def boards(tmp_path, host_key):
    b = Boards(tmp_path, host_key, 3)
    yield b
    b.close()
