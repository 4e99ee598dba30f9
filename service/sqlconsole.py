"""`bplab sql`: one read-only SQL statement against the results database.

Read-only is enforced by the database engine, never by inspecting the text:
- SQLite: a separate connection opened with ``mode=ro`` (the file cannot be written through
  it), PRAGMA query_only=ON, and an authorizer that refuses ATTACH (which could create or
  write another file, as VACUUM INTO does) and switching query_only off. Python's sqlite3
  runs one statement per call.
- PostgreSQL: a connection of its own that logs in as the reader role (BPLAB_SQL_ROLE,
  default bplab_reader, made by migration 0005 with SELECT on bplab's tables and views and
  nothing else; or the user of BPLAB_SQL_URL), in a READ ONLY transaction, which the server
  enforces, and the statement sent through the extended protocol (prepare=True), which
  carries exactly one statement, so 'COMMIT; DELETE ...' cannot step out of the transaction.
  Rolled back and closed at the end whatever happened.
  Why not the configured user: as a superuser, READ ONLY does not stop COPY ... TO PROGRAM,
  pg_read_file or pg_terminate_backend, and SET ROLE is no barrier (the statement can set the
  role back: that right is checked against the session user). So the connection's user is
  checked first: neither it nor any role it may become is a superuser or one of the roles
  that open the server's files, programs or signals. When the reader role cannot log in, a
  configured user that passes the same check is used instead; a superuser is refused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from service.config import Settings, get_settings, mask_url
from service.db.session import get_engine


class SQLRefused(Exception):
    """The database refused the statement (a write, or an error in it): one line to show."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_readonly(url: str, query: str, settings: Settings | None = None) -> QueryResult:
    """Run one statement read-only; SQLRefused carries the database's own message."""
    engine = get_engine(url, readonly=True)  # never creates the file (DatabaseMissing)
    if engine.dialect.name == "sqlite":
        return _sqlite(make_url(url).database or "", query)
    if engine.dialect.name == "postgresql":
        return _postgresql(engine, query, settings or get_settings())
    raise SQLRefused(f"bplab sql does not support the {engine.dialect.name} dialect")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # libpq's "connection to server at ... failed: FATAL:  role ... does not exist": the cause.
    return line.rpartition("FATAL:")[2].strip() if "FATAL:" in line else line


_DENY = sqlite3.SQLITE_DENY
_OK = sqlite3.SQLITE_OK


def _authorize(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return _DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "query_only" and arg2:
        return _DENY
    return _OK


def _sqlite(path: str, query: str) -> QueryResult:
    if path in ("", ":memory:"):
        raise SQLRefused("bplab sql needs a database file, not an in-memory database")
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise SQLRefused(_one_line(exc)) from None
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_authorize)
        cur = conn.execute(query)
        columns = [d[0] for d in cur.description or ()]
        rows = cur.fetchall() if cur.description else []
        return QueryResult(columns, rows)
    except (sqlite3.Error, sqlite3.Warning) as exc:  # Warning: several statements at once
        raise SQLRefused(_one_line(exc)) from None
    finally:
        conn.close()


# Roles that make a session unsafe for arbitrary statements even inside READ ONLY: superusers,
# and the predefined roles that run programs, read or write server files, or signal backends.
_PRIVILEGED = """
SELECT r.rolname FROM pg_roles r
WHERE (pg_has_role(session_user, r.oid, 'MEMBER') OR pg_has_role(current_user, r.oid, 'MEMBER'))
  AND (r.rolsuper OR r.rolname IN ('pg_execute_server_program', 'pg_read_server_files',
                                   'pg_write_server_files', 'pg_signal_backend'))
ORDER BY r.rolsuper DESC, r.rolname LIMIT 1
"""


def reader_url(database_url: URL, settings: Settings) -> URL:
    """The URL `bplab sql` logs in with: BPLAB_SQL_URL, else the database URL as the reader."""
    if settings.sql_url:
        url = make_url(settings.sql_url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url
    # libpq also reads user and password from the query string; they must not override.
    # (URL.set ignores None, which would keep the configured user's password: hence create.)
    url = database_url.difference_update_query(["user", "password"])
    return URL.create(
        url.drivername,
        username=settings.sql_role,
        password=settings.sql_password,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )


def _connect(url: URL) -> Any:
    """A psycopg connection of its own (never pooled: no session state outlives the command)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        raw = engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()
    finally:
        engine.dispose()
    conn.rollback()  # the dialect's first-connect queries opened a transaction
    return conn


def _privileged_role(conn: Any) -> str | None:
    """The superuser or predefined role this session is or may become, if any."""
    with conn.cursor() as cur:
        cur.execute(_PRIVILEGED)
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def _refuse_if_privileged(conn: Any, whose: str) -> Any:
    try:
        role = _privileged_role(conn)
    except BaseException:
        conn.close()
        raise
    if role is not None:
        conn.close()
        raise SQLRefused(
            f"refusing to run as {whose}, which is or may become {role!r}: bplab sql needs a"
            " user without superuser rights, server file, program or signal roles"
        )
    return conn


def _open_reader(engine: Any, settings: Settings) -> Any:
    """A verified read-only-capable connection, or SQLRefused saying what to do."""
    import psycopg

    url = reader_url(engine.url, settings)
    try:
        conn = _connect(url)
    except psycopg.Error as exc:  # raw_connection() raises the driver's own errors
        reason = _one_line(exc)
        if settings.sql_url:
            raise SQLRefused(
                f"cannot connect with BPLAB_SQL_URL {mask_url(settings.sql_url)}: {reason}"
            ) from None
        # No reader role (not migrated by a user that may create roles, or no password for
        # it): the configured user will do if it could not escape READ ONLY anyway.
        main = _connect(engine.url)
        user = engine.url.username or "the configured user"
        if _privileged_role(main) is None:
            return main
        main.close()
        raise SQLRefused(
            f"refusing to run as PostgreSQL superuser {user!r} and the read-only role"
            f" {settings.sql_role!r} cannot log in ({reason}): run `bplab db upgrade` as a"
            " user that may create roles, or set BPLAB_SQL_URL to a read-only user"
        ) from None
    whose = "BPLAB_SQL_URL's user" if settings.sql_url else f"role {settings.sql_role!r}"
    return _refuse_if_privileged(conn, whose)


def _postgresql(engine: Any, query: str, settings: Settings) -> QueryResult:
    import psycopg

    try:
        conn = _open_reader(engine, settings)
    except psycopg.Error as exc:
        raise SQLRefused(_one_line(exc)) from None
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(query, prepare=True)
            columns = [d.name for d in cur.description or ()]
            rows = cur.fetchall() if cur.description else []
        return QueryResult(columns, [tuple(r) for r in rows])
    except psycopg.Error as exc:
        raise SQLRefused(_one_line(exc)) from None
    finally:
        try:
            conn.rollback()
        except psycopg.Error:
            pass  # the statement may have ended the session (pg_terminate_backend on itself)
        finally:
            conn.close()
