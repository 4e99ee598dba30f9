"""Fixtures shared by the whole suite: real databases, never mocks.

``db_url`` is the fixture to use for anything that touches the results database. It is
parametrised, so a test that takes it runs twice:

- ``[sqlite]``: a new SQLite file in the test's tmp_path (upgraded to the latest schema on
  first use, like a user's bplab.db);
- ``[postgresql]``: a throwaway database ``bplab_test_<random>`` on the PostgreSQL server at
  127.0.0.1:5432 (user postgres; override the server with BPLAB_TEST_PG_ADMIN_URL), created
  and migrated once per test session, emptied (TRUNCATE ... RESTART IDENTITY CASCADE) before
  each test, dropped at the end. If the server is unreachable the test errors with a clear
  message: it is never skipped.

While the test runs BPLAB_DATABASE_URL points at the same database, so code that uses the
default settings (the CLI through CliRunner, subprocesses that inherit os.environ) writes
where the test reads. ``session`` is a plain Session on db_url (commit it yourself; it is
rolled back and closed afterwards; on SQLite its transactions are DEFERRED, so holding it
open does not block writers in other sessions or processes). ``empty_pg_url`` is a
PostgreSQL database with no schema at all, for migration tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# The tests' runs train for well under a second, yet many of them test checkpoints: take the
# periodic ones at every BPLAB_CHECKPOINT_EVERY epochs, as a slow run does (tests of the
# pacing itself set their own value). Set here, at import, so that every worker process the
# suite starts inherits it too.
os.environ.setdefault("BPLAB_CHECKPOINT_SECONDS", "0")
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

PG_ADMIN_URL = os.environ.get(
    "BPLAB_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _admin_execute(sql: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def create_pg_database(prefix: str | None = None) -> str:
    """Create an empty PostgreSQL database with a random name; its URL. The name starts
    with ``prefix``, else BPLAB_TEST_PG_PREFIX (several people testing on one server can
    tell theirs apart), else bplab_test."""
    prefix = prefix or os.environ.get("BPLAB_TEST_PG_PREFIX", "bplab_test")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        _admin_execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is required for these tests but {make_url(PG_ADMIN_URL)!r} is not"
            f" usable ({type(exc).__name__}: {exc}). Start the server (127.0.0.1:5432, user"
            " postgres, trust auth) or set BPLAB_TEST_PG_ADMIN_URL.",
            pytrace=False,
        )
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database, even with connections still open."""
    from service.db.session import dispose_engines

    dispose_engines(url)
    name = make_url(url).database
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of this test session's migrated PostgreSQL database (shared; see db_url)."""
    from service.db import migrate
    from service.db.session import make_engine

    url = create_pg_database()
    try:
        engine = make_engine(url)
        try:
            migrate.upgrade_engine(engine)
        finally:
            engine.dispose()
        yield url
    finally:
        drop_pg_database(url)


def _truncate_all(url: str) -> None:
    from service.db.models import Base
    from service.db.session import get_engine

    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> Iterator[str]:
    """URL of an empty, fully migrated results database; see the module docstring."""
    from service.db.session import dispose_engines

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bplab.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        _truncate_all(url)
    monkeypatch.setenv("BPLAB_DATABASE_URL", url)
    yield url
    dispose_engines(url)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A Session on db_url; the test commits what it wants kept."""
    from service.db.session import get_engine

    # DEFERRED on SQLite: this session lives as long as the test, and an IMMEDIATE one would
    # hold the write lock from its first read and block every other writer (see session.py).
    bind = get_engine(db_url).execution_options(bplab_sqlite_begin="DEFERRED")
    s = Session(bind=bind, expire_on_commit=False)
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """URL of a brand-new PostgreSQL database with no tables (dropped afterwards)."""
    url = create_pg_database("bplab_test_empty")
    try:
        yield url
    finally:
        drop_pg_database(url)
