"""`bplab sql`: one read-only SQL statement against the results database.

Read-only is enforced by the database engine, never by inspecting the text:
- SQLite: a separate connection opened with ``mode=ro`` (the file cannot be written through
  it), PRAGMA query_only=ON, and an authorizer that refuses ATTACH (which could create or
  write another file, as VACUUM INTO does) and switching query_only off. Python's sqlite3
  runs one statement per call.
- PostgreSQL: a dedicated connection (never returned to the pool, so no session setting
  outlives the command) in a READ ONLY transaction, which the server enforces, and the
  statement sent through the extended protocol (prepare=True), which carries exactly one
  statement, so 'COMMIT; DELETE ...' cannot step out of the transaction. Rolled back at the
  end whatever happened.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from service.db.session import get_engine


class SQLRefused(Exception):
    """The database refused the statement (a write, or an error in it): one line to show."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_readonly(url: str, query: str) -> QueryResult:
    """Run one statement read-only; SQLRefused carries the database's own message."""
    engine = get_engine(url)  # creates/upgrades an embedded SQLite database like every command
    if engine.dialect.name == "sqlite":
        return _sqlite(make_url(url).database or "", query)
    if engine.dialect.name == "postgresql":
        return _postgresql(engine, query)
    raise SQLRefused(f"bplab sql does not support the {engine.dialect.name} dialect")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


def _postgresql(engine: Any, query: str) -> QueryResult:
    import psycopg

    raw = engine.raw_connection()
    conn = raw.driver_connection
    raw.detach()  # closed below rather than returned to the pool
    try:
        conn.rollback()  # the pool's pre-ping may have opened a transaction already
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
        finally:
            conn.close()
