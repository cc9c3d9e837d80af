"""Database fixtures: a fresh SQLite file per test and a fresh PostgreSQL schema per test.

PostgreSQL is the real server on 127.0.0.1:5432 (trust auth). It is started if it is
down; if it still cannot be reached the tests are skipped, except when the environment
variable ``CI`` is set: then they fail, because skipping PostgreSQL in CI is not allowed.

One database (``webpush_kit_test_<pid>_<random>``) is created per test session and
dropped at its end; every test gets its own schema in it (via ``search_path``), so each
test starts from an empty database, tables created lazily by the store itself.

Use from a test module or a conftest with ``pytest_plugins = ["tests.dbs"]`` (or import
the fixtures by name: ``from tests.dbs import store, store_url, ...``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from webpush_kit.store import Store

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USERS = ("postgres", "root")
PG_START_TIMEOUT_S = 60.0

BACKENDS = ("sqlite", "postgresql")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def _pg_connect(user: str, dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=user, dbname=dbname, autocommit=True, connect_timeout=3
    )


def _pg_user() -> str | None:
    """The first role we can log in as, or None when the server does not answer."""
    import psycopg

    for user in PG_USERS:
        try:
            with _pg_connect(user):
                return user
        except psycopg.OperationalError:
            continue
    return None


def _start_postgres() -> str:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return "no cluster under /etc/postgresql"
    proc = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (proc.stdout + proc.stderr).strip()


def ensure_postgres() -> str:
    """Return a role name on a running server, starting the server if needed."""
    user = _pg_user()
    if user is not None:
        return user
    output = _start_postgres()
    deadline = time.monotonic() + PG_START_TIMEOUT_S
    while time.monotonic() < deadline:
        user = _pg_user()
        if user is not None:
            return user
        time.sleep(0.5)
    _unavailable(f"cannot connect to {PG_HOST}:{PG_PORT} after starting it ({output})")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this test session (dropped at the end)."""
    user = ensure_postgres()
    name = f"webpush_kit_test_{os.getpid()}_{secrets.token_hex(4)}"
    with _pg_connect(user) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _pg_connect(user) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """URL whose connections use a fresh, empty schema (dropped after the test)."""
    schema = f"t_{secrets.token_hex(6)}"
    user, dbname = pg_database.split("://", 1)[1].split("@", 1)[0], pg_database.rsplit("/", 1)[1]
    with _pg_connect(user, dbname) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_database}?options=-csearch_path%3D{schema}"
    finally:
        with _pg_connect(user, dbname) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'webpush.db'}"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once for SQLite and once for PostgreSQL."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    assert isinstance(url, str)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A Store on a fresh database, for each backend."""
    st = Store(store_url)
    try:
        yield st
    finally:
        st.dispose()
