"""Engines and sessions: per-process engines, commit/rollback, read-only sessions."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from service.db import repository as repo
from service.db.models import Sweep
from service.db.session import get_engine, session_scope


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
