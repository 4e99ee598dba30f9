"""Column types that behave the same on SQLite and PostgreSQL, and the database clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Double, literal
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

_NAN_TEXT = "NaN"


class SafeFloat(TypeDecorator[float]):
    """A double precision column in which NaN, +inf and -inf survive the round trip.

    PostgreSQL's ``double precision`` stores all three natively, so nothing is done there.
    SQLite stores +/-inf natively as REAL but silently turns NaN into NULL, which would
    make a diverged run's loss indistinguishable from "not recorded". On SQLite only we
    therefore store NaN as the text 'NaN' in the same (REAL-affinity) column: SQLite keeps
    text that is not a number as TEXT, and reads it back here as float('nan').

    Why this and not Optuna's value + kind column pair: one column per metric keeps plain
    SQL readable and the rows small, and NaN sorts after every number on both databases
    (SQLite orders TEXT after REAL, PostgreSQL orders NaN above all numbers), so
    ``ORDER BY loss`` and ``MAX(loss)`` agree between them. The price: SQLite's SUM/AVG read
    'NaN' as 0, so aggregate over runs that did not diverge (PostgreSQL gives NaN there).
    NULL stays NULL on both.
    """

    impl = Double
    cache_ok = True

    # bind_processor/result_processor are overridden whole (not process_bind_param): the
    # impl's own processing would turn the 'NaN' text back into a float, and this is the
    # hot path of recording epochs, so one plain function per value is all it costs.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return _bind_sqlite
        return _bind_float

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        return _result_float


def _bind_float(value: Any) -> float | None:
    # float() also turns numpy scalars into something every driver binds.
    return None if value is None else float(value)


def _bind_sqlite(value: Any) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    return _NAN_TEXT if value != value else value


def _result_float(value: Any) -> float | None:
    return None if value is None else float(value)  # float('NaN') from SQLite's text


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps that always come back timezone-aware in UTC.

    PostgreSQL uses ``timestamp with time zone``; SQLite keeps a naive text timestamp whose
    value is UTC (its CURRENT_TIMESTAMP/'now' are UTC), so UTC is attached on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class db_now(FunctionElement[dt.datetime]):  # noqa: N801 - reads like func.now()
    """The database server's current time, so that leases never depend on worker clocks.

    PostgreSQL: statement_timestamp(), not now(): now() is the start of the transaction,
    so a heartbeat written late in a transaction would look older than it is. SQLite:
    CURRENT_TIMESTAMP only has whole seconds, so strftime with %f gives milliseconds (in
    UTC, like CURRENT_TIMESTAMP).
    """

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now)
def _db_now_default(element: db_now, compiler: Any, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


class db_ago(FunctionElement[dt.datetime]):  # noqa: N801 - reads like db_now()
    """Database time minus a number of seconds: the cut-off for an expired lease."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        super().__init__(literal(float(seconds), Double()))


@compiles(db_ago)
def _db_ago_default(element: db_ago, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"statement_timestamp() - make_interval(secs => {seconds})"


@compiles(db_ago, "sqlite")
def _db_ago_sqlite(element: db_ago, compiler: Any, **kw: Any) -> str:
    # Same text format as db_now, so that comparing the stored text orders correctly.
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || {seconds} || ' seconds')"
