"""The hot path: a batch of epoch rows as one insert-or-ignore statement.

Recording must cost well under Optuna's 2.3 ms per reported step (issue 8: <= 23 us per
epoch row), so this bypasses SQLAlchemy's per-row parameter processing, which dominated:

- PostgreSQL: ONE statement for the whole batch, whatever its size:
  ``INSERT ... SELECT FROM unnest(epochs[], losses[], ...) ON CONFLICT DO NOTHING``,
  with one array parameter per column, laid out by NumPy in PostgreSQL's binary array
  format (``_pg_array``; binary parameters need the server-side binding that SQLAlchemy's
  psycopg dialect uses, not a client-side-binding cursor). An executemany (psycopg's
  pipeline) or SQLAlchemy's multi-VALUES rendering cost 30-100 us per row here; the arrays
  cost a few.
- SQLite: INSERT ... ON CONFLICT DO NOTHING statements of a hundred VALUES rows each, run by
  the sqlite3 module's executemany, which loops in C; only the values are converted here
  (NaN as the text 'NaN', the same rule as service.db.types.SafeFloat, which reads them back).

Both keep the first row written for an existing (run_id, epoch): replaying a batch after
a crash, or after a resume from checkpoint, never duplicates or changes an epoch.

``insert_epoch_rows_fenced`` adds the attempt check (the fence, which doubles as the
heartbeat) to the write, so a stale attempt's rows never land, exactly as with a separate
UPDATE-then-INSERT:
- PostgreSQL, small batches: one statement whose data-modifying CTE updates the run row only
  if the attempt still owns it and inserts the rows only if that update found it.
- PostgreSQL, batches of COPY_MIN_ROWS or more: the fence UPDATE, then COPY into a
  per-connection temporary table and one INSERT ... SELECT ... ON CONFLICT DO NOTHING from it.
  COPY skips parsing a thousand-element array per column (measured here: ~11-12 us per row
  against ~13-15 us for unnest at 1000 rows); the same insert-or-ignore rule applies.
- SQLite: the fence UPDATE and the inserts (in-process, no round trips to save).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection

EPOCH_FIELDS = ("loss", "accuracy", "val_loss", "val_accuracy", "max_error")
_EPOCH_KEYS = frozenset(("epoch", *EPOCH_FIELDS))
# A batch of epoch rows: mappings, or tuples in the order of ("epoch", *EPOCH_FIELDS)
EpochRows = Sequence[Mapping[str, Any]] | Sequence[tuple[Any, ...]]
_COLUMNS = "run_id, epoch, " + ", ".join(EPOCH_FIELDS)

# Rows per SQLite INSERT: one statement of 100 VALUES rows cost 1.6 us a row, an executemany of
# a one-row statement 2.05 us (measured: 96,000 rows, 32 runs, three transactions), time in
# which the other processes of a local pool wait for the write lock.
_SQLITE_ROWS_PER_STATEMENT = 100
_SQLITE_WIDTH = 2 + len(EPOCH_FIELDS)  # run_id, epoch, the metrics
_PG_INSERT = (
    f"INSERT INTO epoch_metrics ({_COLUMNS})"
    " SELECT %(run_id)s, u.* FROM unnest("
    "%(epoch)s::integer[], "
    + ", ".join(f"%({f})s::double precision[]" for f in EPOCH_FIELDS)
    + ") AS u ON CONFLICT (run_id, epoch) DO NOTHING"
)


# The fence of service.db.repository._fenced_update, fused with the insert: the runs row
# is updated (and locked until commit) only for the current running attempt, and the
# INSERT reads its rows FROM that update's RETURNING, so no fence means no rows.
_PG_FENCED_INSERT = (
    "WITH fence AS (UPDATE runs SET heartbeat_at = statement_timestamp()"
    " WHERE id = %(run_id)s AND attempt = %(attempt)s AND status = 'running' RETURNING id),"
    f" ins AS (INSERT INTO epoch_metrics ({_COLUMNS})"
    " SELECT fence.id, u.* FROM fence, unnest("
    "%(epoch)s::integer[], "
    + ", ".join(f"%({f})s::double precision[]" for f in EPOCH_FIELDS)
    + ") AS u ON CONFLICT (run_id, epoch) DO NOTHING)"
    " SELECT count(*) FROM fence"
)
_PG_FENCE = (
    "UPDATE runs SET heartbeat_at = statement_timestamp()"
    " WHERE id = %s AND attempt = %s AND status = 'running'"
)
# Rows to COPY go to a temporary table of the connection (emptied at every commit),
# then through the same insert-or-ignore as the other paths.
_PG_STAGE = "bplab_epoch_stage"
_PG_STAGE_CREATE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_PG_STAGE} (epoch integer, "
    + ", ".join(f"{f} double precision" for f in EPOCH_FIELDS)
    + ") ON COMMIT DELETE ROWS"
)
_PG_STAGE_COPY = f"COPY {_PG_STAGE} (epoch, {', '.join(EPOCH_FIELDS)}) FROM STDIN"
_PG_STAGE_INSERT = (
    f"INSERT INTO epoch_metrics ({_COLUMNS}) SELECT %s, s.* FROM {_PG_STAGE} AS s"
    " ON CONFLICT (run_id, epoch) DO NOTHING"
)
# Below this many rows the one-statement unnest path is as fast (fewer round trips).
COPY_MIN_ROWS = 256

# Many runs' rows and heartbeats in one statement (a population's flush): the fence
# updates the rows of the runs whose attempt still owns them, only their rows are inserted,
# and the statement returns the runs that passed.
_PG_FENCED_INSERT_MANY = (
    "WITH fence AS (UPDATE runs SET heartbeat_at = statement_timestamp()"
    " FROM unnest(%(ids)s::integer[], %(attempts)s::integer[]) AS f(id, attempt)"
    " WHERE runs.id = f.id AND runs.attempt = f.attempt AND runs.status = 'running'"
    " RETURNING runs.id),"
    f" ins AS (INSERT INTO epoch_metrics ({_COLUMNS})"
    " SELECT u.* FROM unnest(%(run_id)s::integer[], %(epoch)s::integer[], "
    + ", ".join(f"%({f})s::double precision[]" for f in EPOCH_FIELDS)
    + f") AS u({_COLUMNS}) JOIN fence ON fence.id = u.run_id"
    " ON CONFLICT (run_id, epoch) DO NOTHING)"
    " SELECT id FROM fence"
)

_SQLITE_FENCE = (
    "UPDATE runs SET heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now')"
    " WHERE id = ? AND attempt = ? AND status = 'running'"
)


def _check_keys(row: Mapping[str, Any]) -> None:
    if not row.keys() <= _EPOCH_KEYS:
        raise ValueError(f"unknown epoch metric(s): {sorted(row.keys() - _EPOCH_KEYS)}")


def epoch_tuples(rows: EpochRows) -> Sequence[tuple[Any, ...]]:
    """Rows as (epoch, *EPOCH_FIELDS) tuples of int and floats (None: not measured).

    The executor's recorder keeps its rows in that form already (built from the population's
    metric columns, about 4 us a row cheaper than a dict checked and converted here), and
    they pass as they are; a batch of mappings ({"epoch": int, metric: float | None}) is
    checked (an unknown key is a ValueError) and laid out.
    """
    if not rows or isinstance(rows[0], tuple):
        return rows
    laid_out = []
    for row in rows:
        _check_keys(row)
        values = (row.get(f) for f in EPOCH_FIELDS)
        laid_out.append((int(row["epoch"]), *(None if v is None else float(v) for v in values)))
    return laid_out


def _sqlite_value(value: Any) -> float | str | None:
    return "NaN" if value != value else value  # None != None is False


def _pg_columns(rows: EpochRows) -> dict[str, list[Any]]:
    columns = list(zip(*epoch_tuples(rows), strict=True)) or [()] * (1 + len(EPOCH_FIELDS))
    return dict(zip(("epoch", *EPOCH_FIELDS), map(list, columns), strict=True))


class _Float8Array(bytes):
    """A float8[] parameter already in PostgreSQL's binary array format (see _pg_array)."""


class _Int4Array(bytes):
    """An int4[] parameter already in PostgreSQL's binary array format."""


@functools.cache
def _binary_dumpers() -> tuple[tuple[type, type], ...]:
    """psycopg dumpers that send those arrays as they are (1022 and 1007 are float8[] and
    int4[] in every PostgreSQL). Made on first use: importing psycopg at module level cost a
    SQLite-only process (the local pool's children) about 0.1 s of its start-up (issue 22)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    dumpers = []
    for wrap, oid in ((_Float8Array, 1022), (_Int4Array, 1007)):

        class ArrayDumper(Dumper):
            format = Format.BINARY

            def dump(self, obj: Any) -> bytes:
                return bytes(obj)

        ArrayDumper.oid = oid
        dumpers.append((wrap, ArrayDumper))
    return tuple(dumpers)


def _use_binary_arrays(conn: Connection) -> None:
    # On the connection itself: psycopg copies its global adapters into each connection when
    # it opens, so registering them globally now would miss connections already open.
    adapters = conn.connection.driver_connection.adapters  # type: ignore[union-attr]
    for wrap, dumper in _binary_dumpers():
        adapters.register_dumper(wrap, dumper)


_ELEMENT = {
    701: np.dtype([("len", ">i4"), ("v", ">f8")]),
    23: np.dtype([("len", ">i4"), ("v", ">i4")]),
}


def _pg_array(values: list[Any], element_oid: int) -> Any:
    """A column of ints (int4) or floats (float8; None for NULL) as a query parameter.

    psycopg dumps a Python list element by element in Python, about 2 us each: two thirds of
    a population's row-writing time (measured). Here NumPy lays the list out in PostgreSQL's
    binary array format at once (every element a length and its big-endian bytes; NaN and
    infinities as themselves). A column of nothing but NULLs goes as a NULL array, which
    multi-argument unnest pads with NULLs like a short one; a column mixing NULLs and numbers
    (no caller writes one) is left to psycopg.
    """
    n = len(values)
    nulls = values.count(None)
    if nulls == n and n:
        return None
    if nulls:
        return values
    elements = np.empty(n, _ELEMENT[element_oid])
    elements["len"] = elements.dtype["v"].itemsize
    elements["v"] = values
    header = struct.pack(">iii", 1 if n else 0, 0, element_oid)
    dims = struct.pack(">ii", n, 1) if n else b""
    wrap = _Float8Array if element_oid == 701 else _Int4Array
    return wrap(header + dims + elements.tobytes())


def _pg_arrays(conn: Connection, columns: Mapping[str, list[Any]]) -> dict[str, Any]:
    _use_binary_arrays(conn)
    return {
        key: _pg_array(values, 23 if key in ("run_id", "epoch") else 701)
        for key, values in columns.items()
    }


def _sqlite_params(run_id: int, rows: EpochRows) -> list[tuple[Any, ...]]:
    rows = epoch_tuples(rows)
    params = [(run_id, *row) for row in rows]
    if any(v != v for row in rows for v in row):  # a NaN: SQLite would store it as NULL
        params = [(run_id, row[0], *map(_sqlite_value, row[1:])) for row in rows]
    return params


@functools.cache
def _sqlite_insert_sql(rows: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * _SQLITE_WIDTH) + ")"] * rows)
    return (
        f"INSERT INTO epoch_metrics ({_COLUMNS}) VALUES {values}"
        " ON CONFLICT (run_id, epoch) DO NOTHING"
    )


def _sqlite_insert(conn: Connection, run_id: int, rows: EpochRows) -> None:
    values = list(chain.from_iterable(_sqlite_params(run_id, rows)))
    step = _SQLITE_ROWS_PER_STATEMENT * _SQLITE_WIDTH
    whole = len(values) - len(values) % step
    if whole:
        batches = [tuple(values[i : i + step]) for i in range(0, whole, step)]
        conn.exec_driver_sql(_sqlite_insert_sql(_SQLITE_ROWS_PER_STATEMENT), batches)
    if whole < len(values):
        rest = tuple(values[whole:])
        conn.exec_driver_sql(_sqlite_insert_sql(len(rest) // _SQLITE_WIDTH), rest)


def insert_epoch_rows_fenced(conn: Connection, run_id: int, attempt: int, rows: EpochRows) -> bool:
    """Renew the heartbeat of ``attempt`` and insert ``rows`` (as ``insert_epoch_rows``),
    only if ``attempt`` is still the run's running attempt; False (nothing written) if not.

    Drop-in for ``_fenced_update`` + ``insert_epoch_rows`` in repository.record_epochs:
    ``if not insert_epoch_rows_fenced(...): raise StaleAttempt(run_id, attempt)``.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        if len(rows) >= COPY_MIN_ROWS:
            return _pg_fenced_copy(conn, run_id, attempt, rows)
        params = {"run_id": run_id, "attempt": attempt, **_pg_arrays(conn, _pg_columns(rows))}
        return bool(conn.exec_driver_sql(_PG_FENCED_INSERT, params).scalar())
    if dialect == "sqlite":
        # in-process: two statements cost no extra round trip here
        if conn.exec_driver_sql(_SQLITE_FENCE, (run_id, attempt)).rowcount != 1:
            return False
        if rows:
            _sqlite_insert(conn, run_id, rows)
        return True
    raise NotImplementedError(f"bplab supports SQLite and PostgreSQL, not {dialect}")


def insert_epoch_rows_fenced_many(
    conn: Connection, items: Sequence[tuple[int, int, EpochRows]]
) -> set[int]:
    """``insert_epoch_rows_fenced`` for several runs at once: items are (run_id, attempt,
    rows); returns the run ids fenced out (nothing written for them). On PostgreSQL one
    statement for all of them, whatever the number of runs and rows."""
    if not items:
        return set()
    if conn.dialect.name != "postgresql":
        return {r for r, a, rows in items if not insert_epoch_rows_fenced(conn, r, a, rows)}
    run_col: list[int] = []
    params: dict[str, list[Any]] = {"epoch": [], **{f: [] for f in EPOCH_FIELDS}}
    for run_id, _attempt, rows in items:
        cols = _pg_columns(rows)
        run_col.extend([int(run_id)] * len(rows))
        for key, values in cols.items():
            params[key].extend(values)
    ids = [int(r) for r, _a, _rows in items]
    passed = conn.exec_driver_sql(
        _PG_FENCED_INSERT_MANY,
        {
            "ids": ids,
            "attempts": [int(a) for _r, a, _rows in items],
            **_pg_arrays(conn, {"run_id": run_col, **params}),
        },
    ).scalars()
    return set(ids) - {int(r) for r in passed}


def _pg_fenced_copy(conn: Connection, run_id: int, attempt: int, rows: EpochRows) -> bool:
    if conn.exec_driver_sql(_PG_FENCE, (run_id, attempt)).rowcount != 1:
        return False
    records = epoch_tuples(rows)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        # every time (tens of us): remembering it would be wrong after a rolled-back creation
        cursor.execute(_PG_STAGE_CREATE)
        with cursor.copy(_PG_STAGE_COPY) as copy:
            for record in records:
                copy.write_row(record)
        cursor.execute(_PG_STAGE_INSERT, (run_id,))
    finally:
        cursor.close()
    return True


def insert_epoch_rows(conn: Connection, run_id: int, rows: EpochRows) -> None:
    """Insert rows ({"epoch": int, metric: float | None, ...}, or epoch_tuples) for run_id,
    ignoring epochs already present. Missing metrics are NULL; an unknown key is a ValueError."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        _sqlite_insert(conn, run_id, rows)
    elif dialect == "postgresql":
        conn.exec_driver_sql(_PG_INSERT, {"run_id": run_id, **_pg_arrays(conn, _pg_columns(rows))})
    else:
        raise NotImplementedError(f"bplab supports SQLite and PostgreSQL, not {dialect}")
