"""Engines and sessions: one engine per (URL, process), SQLite tuned for several writers.

The caller owns the transaction: ``with session_scope() as s: ...`` commits on success,
rolls back on an exception and always closes. Repository functions never commit.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, Transaction, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from migrations import HEAD_REVISION
from service.config import get_settings, mask_url

log = logging.getLogger("bplab.db")

_engines: dict[tuple[str, int, bool], Engine] = {}
_lock = threading.Lock()


class SchemaNotReady(RuntimeError):
    """The database exists but is not at the schema revision this bplab needs."""


class DatabaseMissing(RuntimeError):
    """A report was asked of an embedded SQLite database that does not exist (yet).

    Readers never create the file: an empty bplab.db left behind by a typo in a path, or by
    `bplab db current`, would only hide the mistake.
    """


def busy_timeout_ms() -> int:
    """How long a SQLite writer waits for another process's write lock (ms).

    BPLAB_SQLITE_BUSY_TIMEOUT, in seconds (default 30): long enough for a sweep's batched
    writes, and short enough to configure when a script would rather fail fast.
    """
    return int(get_settings().sqlite_busy_timeout * 1000)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (as SQLite would resolve it); None for other databases and
    for in-memory or URI-style SQLite databases."""
    sa_url = make_url(url)
    database = sa_url.database or ""
    if sa_url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def resolve_url(url: str | None = None) -> str:
    """The URL to use: the argument, else BPLAB_DATABASE_URL, else the SQLite default."""
    return url or get_settings().database_url


def make_engine(url: str) -> Engine:
    """A new engine for url, with no schema check (migrations use this directly).

    SQLite connections get WAL (readers never block the writer), a 30 s busy timeout
    (busy_timeout_ms),
    foreign keys (off by default in SQLite, and the cascades rely on them) and
    synchronous=NORMAL (durable at every checkpoint of the WAL; a power cut can lose
    the last transactions but never corrupts the file).
    """
    sa_url = make_url(url)
    if sa_url.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; bplab depends on psycopg 3.
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    if sa_url.get_backend_name() != "sqlite":
        # pool_pre_ping: a worker that outlives a PostgreSQL restart gets a fresh
        # connection instead of an error on its next batch.
        return create_engine(sa_url, pool_pre_ping=True)

    kwargs: dict[str, Any] = {}
    if sa_url.database in (None, "", ":memory:"):
        # An in-memory database exists per connection: keep exactly one.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = create_engine(sa_url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN lazily and
        # DEFERRED); _on_begin below issues the BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # first: the WAL switch may have to wait
        cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front and waits (busy_timeout) for it.
        # A DEFERRED transaction that reads and then writes fails at once with "database
        # is locked" if another process committed in between, busy timeout or not: exactly
        # what a pool of local workers (read the run, then claim it) would hit. (Django
        # 5.1's SQLite "transaction_mode": "IMMEDIATE" exists for the same reason.) The
        # price: a read-write transaction holds the lock from its first statement, so keep
        # them short. Reports use DEFERRED (session_scope(readonly=True), or the execution
        # option bplab_sqlite_begin="DEFERRED") and never hold up the writers.
        mode = conn.get_execution_options().get("bplab_sqlite_begin", "IMMEDIATE")
        if mode == "DEFERRED":
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn)

    return engine


def get_engine(url: str | None = None, *, readonly: bool = False) -> Engine:
    """The engine for url (default: the settings' database_url), created once per process.

    Keyed by process id as well, so a forked worker never shares a connection pool with its
    parent. On first use a SQLite database is created or upgraded to the latest schema; a
    PostgreSQL database must already be at the latest revision (``bplab db upgrade``),
    else SchemaNotReady.

    readonly=True, for reports: on SQLite a connection that cannot write (``mode=ro``), so
    that a report neither creates the file (DatabaseMissing instead) nor waits for a sweep's
    write lock; only a file at an older schema revision is upgraded first, once, through
    the writers' engine. On PostgreSQL the writers' engine serves (session_scope makes the
    transaction READ ONLY).
    """
    url = resolve_url(url)
    readonly = readonly and sqlite_file(url) is not None
    key = (url, os.getpid(), readonly)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    if readonly:
        engine = make_reader_engine(url)
        try:
            if stored_revision(engine) != HEAD_REVISION:
                get_engine(url)  # an old (or empty) file: upgrade it once, as a writer would
        except BaseException:
            engine.dispose()
            raise
        with _lock:
            _engines.setdefault(key, engine)
        return _engines[key]
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = make_engine(url)
            try:
                _ensure_schema(engine, url)
            except BaseException:
                engine.dispose()
                raise
            _engines[key] = engine
    return engine


def adopt_checked_engine(url: str | None = None) -> Engine:
    """The writers' engine for url in a process whose parent has just checked the schema.

    For the local pool's children: the parent called get_engine(url) (creating or upgrading a
    SQLite file, checking a PostgreSQL one) before starting them, so checking again would only
    import Alembic and read the migrations, about a third of a second of each child's start-up
    (issue 22). Anyone else calls get_engine.
    """
    url = resolve_url(url)
    key = (url, os.getpid(), False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
    return engine


def make_reader_engine(url: str) -> Engine:
    """A SQLite engine whose connections open the file read-only and never create it."""
    path = sqlite_file(url)
    assert path is not None
    if not path.exists():
        where = "its directory does not exist" if not path.parent.is_dir() else "no such file"
        raise DatabaseMissing(
            f"no database at {path} ({where}): nothing has been recorded there yet; "
            "`bplab sweep run SPEC` creates it, BPLAB_DATABASE_URL names another"
        )
    sa_url = make_url(url)
    reader = sa_url.set(
        database=f"file:{path}", query={**sa_url.query, "mode": "ro", "uri": "true"}
    )
    engine = create_engine(reader)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL is a property of the file (the writers set it): a reader reads the last commit
        # while a sweep writes, and waits only through a checkpoint's brief exclusive moment.
        cur.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        cur.execute("PRAGMA query_only = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")  # DEFERRED: a reader never asks for the write lock

    return engine


def _begin_immediate(conn: Connection) -> None:
    """BEGIN IMMEDIATE, tried again every millisecond while another process holds the lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, ... ms between its
    tries: a process that finds the lock taken for 60 ms (the other pool process writing a
    population's rows) got it at 78 ms, or 103; in the 3,000-epoch sweep each pool process
    waited 0.11 s so. The last try goes through SQLAlchemy, whose error callers know.
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    started = time.monotonic()
    patience = busy_timeout_ms() / 1000
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - started
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or waited >= patience:
                    break
            time.sleep(0.001 if waited < 1 else 0.01)  # a long wait need not spin
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        raw.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")


def stored_revision(engine: Engine) -> str | None:
    """The schema revision the database records (None: never migrated), read with plain SQL:
    Alembic is imported only when there is something to migrate."""
    with engine.connect() as conn:
        if not conn.dialect.has_table(conn, "alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _ensure_schema(engine: Engine, url: str) -> None:
    current = stored_revision(engine)
    if current == HEAD_REVISION:
        return
    if engine.dialect.name == "sqlite":
        from service.db.snapshot import create_from_snapshot

        if current is None and create_from_snapshot(engine):
            return
        from service.db import migrate

        migrate.upgrade_engine(engine)
        return
    from service.db import migrate

    head = migrate.head_revision()
    if current != head:
        raise SchemaNotReady(
            f"the database {mask_url(url)} is at schema revision {current or 'none (empty)'}"
            f" but bplab needs {head}; run `bplab db upgrade` (with BPLAB_DATABASE_URL set"
            " to this database) first"
        )


def dispose_engines(url: str | None = None) -> None:
    """Close the pooled connections of this process's engines (of one URL, or all)."""
    with _lock:
        for key in list(_engines):
            if key[1] == os.getpid() and (url is None or key[0] == url):  # readers too
                _engines.pop(key).dispose()


def close_engines() -> None:
    """At a process's end (atexit): ``dispose_engines()``, and every SQLite file it used whole.

    The last connection to a SQLite file to close moves the write-ahead log into the file and
    deletes it, unless it opened the file read-only (as every reader here does, and a command
    usually reads last). Until something moves it, the newest commits live only in
    ``bplab.db-wal``: a user who copies ``bplab.db`` alone gets runs still "running" (seen
    after `bplab sweep run`). So one writing connection checkpoints the log into the file,
    and closes last.
    """
    files = {sqlite_file(key[0]) for key in _engines if key[1] == os.getpid()}
    dispose_engines()
    for path in files:
        if path is not None and Path(f"{path}-wal").exists():
            _fold_write_ahead_log(path)


def _fold_write_ahead_log(path: Path) -> None:
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_ms() / 1000)
        try:
            # Copies the log's pages into the file now, even while another process keeps the
            # file open (`bplab dashboard` reading it): only one reading an older snapshot at
            # this moment holds part of it back. Closing the last connection deletes the log.
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        pass  # a file we may only read: it stays as it is, complete with its log


def _forget_parent_engines() -> None:
    # In a forked child the parent's pooled sockets must be neither used nor closed (that
    # would end the parent's sessions): drop them without closing.
    for key in list(_engines):
        _engines.pop(key).dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_engines)
# Any process that used a database ends with its files whole: the bplab program, a notebook
# using service.api, a worker. (A pool process ends with os._exit: its parent folds the log.)
atexit.register(close_engines)


@contextmanager
def session_scope(url: str | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """A session in one transaction: commit on success, rollback on error, always close.

    readonly=True is for reports: on SQLite a read-only connection in a DEFERRED transaction
    (never creates the file, never waits for or blocks writers; see get_engine); on
    PostgreSQL the transaction is declared READ ONLY, which the server enforces.
    """
    engine = get_engine(url, readonly=readonly)
    bind = engine.execution_options(bplab_sqlite_begin="DEFERRED") if readonly else engine
    session = Session(bind=bind, expire_on_commit=False)
    try:
        if readonly and engine.dialect.name == "postgresql":
            session.connection().exec_driver_sql("SET TRANSACTION READ ONLY")
        yield session
        session.commit()
    except BaseException:
        _roll_back_keeping_the_cause(session)
        raise
    finally:
        session.close()


def _roll_back_keeping_the_cause(transaction: Session | Transaction) -> None:
    """Roll back after an exception, which stays the one raised.

    An exception raised inside the driver (a Celery soft time limit, Ctrl-C) can leave the
    connection in the middle of a statement: the rollback then fails ("another command is
    already in progress"), and its error, had it propagated, would have hidden the cause. A
    worker's time limit turned into a connection error was retried as an outage, and the runs
    trained on past their limit instead of being handed back (seen in tests/faults). The
    broken connection is discarded when it goes back to the pool (its reset fails there).
    """
    try:
        transaction.rollback()
    except Exception as failure:
        log.info("rollback failed (%s); the connection is discarded", failure)


@contextmanager
def connection_scope(url: str | None = None, *, readonly: bool = False) -> Iterator[Connection]:
    """As session_scope, on a bare Connection: for statements a loop runs many times a
    second (the search driver's look at the database), where an ORM Session's own set-up and
    bookkeeping cost more than the SQL. Commits on success, rolls back on an exception."""
    engine = get_engine(url, readonly=readonly)
    bind = engine.execution_options(bplab_sqlite_begin="DEFERRED") if readonly else engine
    with bind.connect() as conn:
        transaction = conn.begin()
        try:
            if readonly and engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn
            transaction.commit()
        except BaseException:
            _roll_back_keeping_the_cause(transaction)
            raise
