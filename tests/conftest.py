"""Shared fixtures: one trained digits model and one conversion per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))  # models/digits.py is a script, not a package


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory):
    """Conversion cache, default store and device locks in tmp dirs, never under ~.

    Set in os.environ, so `harness` subprocesses inherit them too.
    """
    root = tmp_path_factory.mktemp("user")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE_DIR", str(root / "cache"))
        mp.setenv("HARNESS_STORE", f"sqlite:///{root / 'default-store.db'}")
        mp.setenv("XDG_DATA_HOME", str(root / "data"))
        mp.setenv("XDG_CACHE_HOME", str(root / "xdg-cache"))
        mp.setenv("HARNESS_LOCK_DIR", str(root / "locks"))
        mp.delenv("HARNESS_VERBOSE", raising=False)
        yield root


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """models/digits.py trained once: digits.keras, eval.npz (x, y), calibration.npz (x)."""
    import digits as recipe

    out = tmp_path_factory.mktemp("digits")
    recipe.train(out)
    return out


@pytest.fixture(scope="session")
def variants(digits, tmp_path_factory):
    """The digits model converted to fp32, fp16, dynamic, int8 (float I/O)."""
    from harness.convert.pipeline import ConvertSpec, convert_model

    out = tmp_path_factory.mktemp("variants")
    spec = ConvertSpec(
        digits / "digits.keras",
        out,
        ("fp32", "fp16", "dynamic", "int8"),
        digits / "calibration.npz",
    )
    return convert_model(spec)


@pytest.fixture(scope="session")
def int8_io(digits, tmp_path_factory):
    """The int8 variant with int8 input and output tensors."""
    from harness.convert.pipeline import ConvertSpec, convert_model

    out = tmp_path_factory.mktemp("int8io")
    spec = ConvertSpec(digits / "digits.keras", out, ("int8",), digits / "calibration.npz", True)
    return convert_model(spec)


@pytest.fixture
def host_key(tmp_path, monkeypatch) -> Path:
    """A fresh host RSA pair, $HARNESS_ADB_KEY naming it; returns the public key.

    A lost connection is noticed by a read timeout (adb-shell): 2 s keeps the tests quick.
    """
    from harness.adbd.keys import generate_adb_keypair

    pair = generate_adb_keypair(tmp_path / "keys" / "adbkey")
    monkeypatch.setenv("HARNESS_ADB_KEY", str(pair.private_key))
    monkeypatch.setenv("HARNESS_ADB_TIMEOUT", "2")
    return pair.public_key


@pytest.fixture
def store_url(tmp_path) -> str:
    """A fresh SQLite store per test."""
    return f"sqlite:///{tmp_path / 'results.db'}"


PG_ENV = "HARNESS_TEST_PG_URL"


@pytest.fixture
def pg_url():
    """A fresh schema on the real PostgreSQL server named by $HARNESS_TEST_PG_URL.

    Skipped without a server, failed instead when HARNESS_REQUIRE_ALL=1 (CI).
    """
    import secrets
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("HARNESS_REQUIRE_ALL") == "1":
            pytest.fail(f"HARNESS_REQUIRE_ALL=1 but {PG_ENV} is not set (no PostgreSQL)")
        pytest.skip(f"no PostgreSQL: set {PG_ENV}=postgresql+psycopg2://USER:PW@HOST/DB")
    name = f"harness_t_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote(f'-csearch_path={name}', safe='')}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    admin.dispose()
