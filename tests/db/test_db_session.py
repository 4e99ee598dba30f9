"""Engines and sessions: per-process engines, commit/rollback, read-only sessions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from service.db import repository as repo
from service.db.models import Sweep
from service.db.session import connection_scope, get_engine, session_scope


def test_forked_child_gets_its_own_engine_and_leaves_the_parents_alone(db_url):
    parent_engine = get_engine(db_url)
    with parent_engine.connect() as conn:  # a pooled connection the child inherits
        conn.execute(text("SELECT 1"))
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if everything holds
        ok = False
        try:
            child_engine = get_engine(db_url)
            with session_scope(db_url) as s:
                ok = child_engine is not parent_engine and s.scalar(text("SELECT 1")) == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert get_engine(db_url) is parent_engine
    with parent_engine.connect() as conn:  # the parent's pooled connection still works
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_session_scope_commits_or_rolls_back(db_url):
    def add(s):
        return repo.create_sweep(
            s, name="x", dataset="xor", method="grid", spec={}, swept=[], backend="local", runs=[]
        )

    with session_scope(db_url) as s:
        add(s)
    with pytest.raises(RuntimeError), session_scope(db_url) as s:
        add(s)
        raise RuntimeError("boom")
    with session_scope(db_url, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Sweep)) == 1


def test_readonly_session_does_not_block_writers(db_url):
    import time

    get_engine(db_url)  # readers never create the database (issue 18): a writer does
    with session_scope(db_url, readonly=True) as reader:
        reader.scalar(select(func.count()).select_from(Sweep))  # a read transaction is open
        t0 = time.perf_counter()
        with session_scope(db_url) as writer:  # on SQLite: BEGIN IMMEDIATE
            repo.create_sweep(
                writer,
                name="w",
                dataset="xor",
                method="grid",
                spec={},
                swept=[],
                backend="local",
                runs=[],
            )
        assert time.perf_counter() - t0 < 5  # the busy timeout is 30 s


def test_readonly_session_refuses_writes_on_postgresql(empty_pg_url):
    from service.db import migrate
    from service.db.session import dispose_engines, make_engine

    engine = make_engine(empty_pg_url)
    migrate.upgrade_engine(engine)
    engine.dispose()
    try:
        with (
            pytest.raises(DBAPIError, match="read-only transaction"),
            session_scope(empty_pg_url, readonly=True) as s,
        ):
            s.execute(text("DELETE FROM sweeps"))
    finally:
        dispose_engines(empty_pg_url)


class _TimeLimit(Exception):  # noqa: N818 - as Celery's SoftTimeLimitExceeded, an Exception
    """Stands for an exception raised inside the driver, mid-statement."""


def test_an_exception_mid_statement_is_the_one_raised_not_the_failed_rollback(pg_database):
    """A Celery soft time limit landing while psycopg sends a statement leaves the connection
    busy; the rollback then fails. The time limit must still be what the caller sees (it was
    turned into a connection error and retried as an outage: tests/faults), and the broken
    connection must not come back from the pool."""
    with pytest.raises(_TimeLimit), session_scope(pg_database) as s:
        s.execute(text("SELECT 1"))
        pgconn = s.connection().connection.driver_connection.pgconn
        pgconn.send_query(b"SELECT pg_sleep(0.2)")  # a statement in flight, never read
        raise _TimeLimit
    for _ in range(3):  # every pooled connection answers
        with session_scope(pg_database) as s:
            assert s.scalar(text("SELECT 2")) == 2


def test_connection_scope_raises_the_cause_too(pg_database):
    with pytest.raises(_TimeLimit), connection_scope(pg_database) as conn:
        conn.execute(text("SELECT 1"))
        conn.connection.driver_connection.pgconn.send_query(b"SELECT pg_sleep(0.2)")
        raise _TimeLimit
    for _ in range(3):
        with connection_scope(pg_database) as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2


def _hold_write_lock(path: str, seconds: float) -> subprocess.Popen:
    """Another process that takes SQLite's write lock, says so, and keeps it ``seconds``."""
    script = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True)\n"
        f"time.sleep({seconds}); c.execute('COMMIT')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_the_lock_then_fails_as_locked(tmp_path, monkeypatch):
    """BEGIN IMMEDIATE is polled (service.db.session._begin_immediate): a writer gets the lock
    once another process lets it go within the busy timeout, and past it fails with the
    OperationalError "database is locked" that the CLI reports (exit 1); either way its
    connection keeps the configured busy timeout."""
    monkeypatch.setenv("BPLAB_SQLITE_BUSY_TIMEOUT", "2")
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    with session_scope(url) as s:  # created and migrated
        s.execute(text("SELECT 1"))
    holder = _hold_write_lock(str(tmp_path / "lock.db"), 0.3)
    with session_scope(url) as s:
        assert s.scalar(text("PRAGMA busy_timeout")) == 2000
        s.execute(text("UPDATE alembic_version SET version_num = version_num"))
    assert holder.wait(10) == 0
    holder = _hold_write_lock(str(tmp_path / "lock.db"), 3)
    try:
        with pytest.raises(OperationalError, match="database is locked"), session_scope(url) as s:
            s.execute(text("SELECT 1"))  # the session's first statement begins it
    finally:
        holder.wait(10)
    with session_scope(url) as s:
        assert s.scalar(text("PRAGMA busy_timeout")) == 2000
