"""The read queries of the web dashboard (service.web): narrow, aggregated in SQL.

The dashboard must paint a sweep of 10,000 runs x 1,000 epochs in under a second, so these
queries never load ORM objects per run nor every epoch row: status counts and timings are
GROUP BYs, a sweep's runs come back as plain tuples with each distinct configuration parsed
once, and curves are decimated in SQL to one row per run and epoch bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.orm import Session

from service.db.models import (
    PATIENCE_FIELDS,
    RUN_STATUSES,
    SUMMARY_METRICS,
    EpochMetric,
    Run,
    Sweep,
)
from service.db.types import SafeFloat

_epochs: Table = EpochMetric.__table__  # type: ignore[assignment]
_runs: Table = Run.__table__  # type: ignore[assignment]
_sweeps: Table = Sweep.__table__  # type: ignore[assignment]

# The summary fields of a run the dashboard shows (the same ones `bplab results` reads).
RUN_COLUMNS = (
    "id",
    "seed",
    "status",
    "epochs_run",
    *SUMMARY_METRICS,
    *PATIENCE_FIELDS,
    "wall_time_s",
)
# SQLite allows at most 32,766 bound parameters a statement.
_ID_CHUNK = 5000


def fetch_plain(session: Session, stmt: Any) -> list[tuple[Any, ...]]:
    """All rows of a Core SELECT as plain tuples, straight from the driver's fetchall.

    SQLAlchemy's per-row processing costs about a microsecond a value, which is most of the
    time of reading 10,000 runs or 100,000 decimated epochs. The values come back as the
    driver gives them: a SafeFloat NaN is the text 'NaN' on SQLite (see as_float).
    """
    conn = session.connection()
    compiled = stmt.compile(bind=conn, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positiontup is not None:  # SQLite's qmark style
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def as_float(value: Any) -> float | None:
    """A SafeFloat value as fetch_plain returns it (None, a float or SQLite's 'NaN')."""
    return None if value is None else float(value)


def status_order(statuses: Sequence[str]) -> list[str]:
    """Known statuses in their life-cycle order, then any newer one (e.g. "pruned") by name.

    Counts are read from the data, not from RUN_STATUSES, so a status added later by a
    migration is shown without a dashboard change.
    """
    known = [s for s in RUN_STATUSES if s in statuses]
    return known + sorted(set(statuses) - set(RUN_STATUSES))


def sweep_overview(session: Session) -> list[dict[str, Any]]:
    """Every sweep (newest first) with its runs counted by status and its timing.

    Three queries whatever the number of sweeps: the sweeps, counts GROUP BY (sweep, status),
    and first start / last finish GROUP BY sweep.
    """
    sweeps = session.execute(
        select(
            _sweeps.c.id,
            _sweeps.c.name,
            _sweeps.c.dataset,
            _sweeps.c.method,
            _sweeps.c.backend,
            _sweeps.c.n_runs,
            _sweeps.c.created_at,
        ).order_by(_sweeps.c.id.desc())
    ).all()
    counts: dict[int, dict[str, int]] = {int(s.id): {} for s in sweeps}
    q = select(_runs.c.sweep_id, _runs.c.status, func.count()).group_by(
        _runs.c.sweep_id, _runs.c.status
    )
    for sweep_id, status, n in session.execute(q):
        counts.setdefault(int(sweep_id), {})[status] = int(n)
    timing = {
        int(sid): (first, last)
        for sid, first, last in session.execute(
            select(
                _runs.c.sweep_id, func.min(_runs.c.started_at), func.max(_runs.c.finished_at)
            ).group_by(_runs.c.sweep_id)
        )
    }
    out = []
    for s in sweeps:
        first, last = timing.get(int(s.id), (None, None))
        out.append(
            {
                "id": int(s.id),
                "name": s.name,
                "dataset": s.dataset,
                "method": s.method,
                "backend": s.backend,
                "runs": int(s.n_runs),
                "created_at": s.created_at,
                "first_started_at": first,
                "last_finished_at": last,
                "counts": counts.get(int(s.id), {}),
            }
        )
    return out


def sweep_status_counts(session: Session, sweep_id: int) -> dict[str, int]:
    """{status: runs} of one sweep, only the statuses present (any status, even new ones)."""
    q = (
        select(_runs.c.status, func.count())
        .where(_runs.c.sweep_id == sweep_id)
        .group_by(_runs.c.status)
    )
    return {status: int(n) for status, n in session.execute(q)}


def sweep_runs(
    session: Session, sweep_id: int, statuses: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """A sweep's runs as records with ``config`` (shared by the runs of one configuration).

    Two queries: the runs' summary columns and config_key, then each distinct configuration
    once (a sweep of 10,000 runs often has a few hundred), which spares parsing 10,000 JSON
    documents. The records have what service.results.summarize and service.compare read.
    """
    cols = [_runs.c[c] for c in RUN_COLUMNS]
    q = select(*cols, _runs.c.config_key).where(_runs.c.sweep_id == sweep_id)
    if statuses:
        q = q.where(_runs.c.status.in_(list(statuses)))
    rows = fetch_plain(session, q.order_by(_runs.c.id))
    first_of = (
        select(func.min(_runs.c.id).label("rid"))
        .where(_runs.c.sweep_id == sweep_id)
        .group_by(_runs.c.config_key)
        .subquery()
    )
    configs = {
        key: dict(config)
        for key, config in session.execute(
            select(_runs.c.config_key, _runs.c.config).join(first_of, first_of.c.rid == _runs.c.id)
        )
    }
    floats = [i for i, c in enumerate(RUN_COLUMNS) if isinstance(_runs.c[c].type, SafeFloat)]
    out = []
    for row in rows:
        values = list(row[:-1])
        for i in floats:
            values[i] = as_float(values[i])
        record = dict(zip(RUN_COLUMNS, values, strict=True))
        record["config_key"] = row[-1]
        record["config"] = configs[row[-1]]
        out.append(record)
    return out


def membership_stamp(session: Session, sweep_id: int) -> tuple[int, int]:
    """(number of runs, largest run id) of a sweep: changes whenever runs are added, which is
    the only way the configuration -> runs mapping can change (configs never do)."""
    n, top = session.execute(
        select(func.count(), func.max(_runs.c.id)).where(_runs.c.sweep_id == sweep_id)
    ).one()
    return int(n), int(top or 0)


def run_briefs(session: Session, run_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """{run id: (seed, status)} of some runs."""
    out: dict[int, tuple[int, str]] = {}
    ids = [int(r) for r in run_ids]
    for start in range(0, len(ids), _ID_CHUNK):
        q = select(_runs.c.id, _runs.c.seed, _runs.c.status).where(
            _runs.c.id.in_(ids[start : start + _ID_CHUNK])
        )
        out.update({int(r): (int(seed), s) for r, seed, s in fetch_plain(session, q)})
    return out


def max_epochs(session: Session, run_ids: Sequence[int]) -> int:
    """The largest configured epoch budget of the runs (0 for none): fixes a curve's x range
    and its buckets before the runs have recorded anything, so live updates keep the grid."""
    best = 0
    ids = [int(r) for r in run_ids]
    for start in range(0, len(ids), _ID_CHUNK):
        q = select(func.max(_runs.c.epochs)).where(_runs.c.id.in_(ids[start : start + _ID_CHUNK]))
        best = max(best, int(session.execute(q).scalar() or 0))
    return best


def decimated_epochs(
    session: Session,
    run_ids: Sequence[int],
    metric: str,
    width: int,
    after: int = 0,
    *,
    on_grid: bool = False,
) -> list[tuple[int, int, float | None]]:
    """(run_id, epoch, value) of each run's last recorded epoch in every bucket of ``width``
    epochs (buckets 1..width, width+1..2*width, ...), epochs after ``after`` only; ordered
    by run and epoch.

    The last value of a bucket is what a run "holds" at the bucket's end, which is exactly
    what service.curves.aggregate's carry-forward averaging reads there, so a decimated band
    agrees with `bplab plot` at the points it keeps.

    ``on_grid``: the caller knows every run records each epoch that is a multiple of
    ``width`` it reached (width is a multiple of their log_every), so the bucket ends are
    those epochs plus each run's last one: read straight off the primary key, 3-4x faster
    than grouping (which sorts every row of the runs in a temporary b-tree).
    """
    width = max(1, int(width))
    ids = [int(r) for r in run_ids]
    out: list[tuple[int, int, float | None]] = []
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        q = (
            _on_grid(chunk, metric, width, after)
            if on_grid
            else _grouped(session, chunk, metric, width, after)
        )
        rows = [(int(r), int(e), as_float(v)) for r, e, v in fetch_plain(session, q)]
        rows.sort()  # mostly in order already: a near-linear pass; a UNION has no order
        out.extend(rows)
    return out


def _grouped(session: Session, ids: list[int], metric: str, width: int, after: int) -> Any:
    value = _epochs.c[metric]
    # //: integer division on both dialects (SQLAlchemy 2's / on integers divides exactly)
    bucket = (_epochs.c.epoch - 1) // width
    where = (_epochs.c.run_id.in_(ids), _epochs.c.epoch > after)
    if session.get_bind().dialect.name == "postgresql":
        # The last row of each (run, bucket): PostgreSQL has no bare columns beside MAX().
        last_first = func.row_number().over(
            partition_by=(_epochs.c.run_id, bucket), order_by=_epochs.c.epoch.desc()
        )
        ranked = select(
            _epochs.c.run_id, _epochs.c.epoch, value.label("value"), last_first.label("rank")
        ).where(*where)
        sub = ranked.subquery()
        return select(sub.c.run_id, sub.c.epoch, sub.c.value).where(sub.c.rank == 1)
    # SQLite returns the bare column from the row where MAX() found its value.
    return (
        select(_epochs.c.run_id, func.max(_epochs.c.epoch), value)
        .where(*where)
        .group_by(_epochs.c.run_id, bucket)
    )


def _on_grid(ids: list[int], metric: str, width: int, after: int) -> Any:
    value = _epochs.c[metric]
    last = (
        select(_epochs.c.run_id.label("rid"), func.max(_epochs.c.epoch).label("top"))
        .where(_epochs.c.run_id.in_(ids))
        .group_by(_epochs.c.run_id)
        .subquery()
    )
    grid = select(_epochs.c.run_id, _epochs.c.epoch, value).where(
        _epochs.c.run_id.in_(ids),
        _epochs.c.epoch > after,
        _epochs.c.epoch % literal_column(str(width)) == 0,
    )
    ends = (
        select(_epochs.c.run_id, _epochs.c.epoch, value)
        .join(last, (last.c.rid == _epochs.c.run_id) & (last.c.top == _epochs.c.epoch))
        .where(_epochs.c.epoch > after, _epochs.c.epoch % literal_column(str(width)) != 0)
    )
    return grid.union_all(ends)


def last_epochs(session: Session, run_ids: Sequence[int]) -> dict[int, int]:
    """{run_id: its last recorded epoch} (runs with none are left out): where a pruned or
    stopped run ended, read from the primary key's index alone."""
    out: dict[int, int] = {}
    ids = [int(r) for r in run_ids]
    for start in range(0, len(ids), _ID_CHUNK):
        q = (
            select(_epochs.c.run_id, func.max(_epochs.c.epoch))
            .where(_epochs.c.run_id.in_(ids[start : start + _ID_CHUNK]))
            .group_by(_epochs.c.run_id)
        )
        out.update({int(r): int(e) for r, e in session.execute(q)})
    return out


def pruned_runs(
    session: Session, run_ids: Sequence[int]
) -> dict[int, tuple[int, int | None, float | None, float | None]]:
    """{run id: (seed, pruned_epoch, pruned_value, pruned_threshold)} of those of the runs an
    early_terminate rule stopped: what the chart marks where it stopped (service.web)."""
    out: dict[int, tuple[int, int | None, float | None, float | None]] = {}
    ids = [int(r) for r in run_ids]
    cols = (_runs.c.pruned_epoch, _runs.c.pruned_value, _runs.c.pruned_threshold)
    for start in range(0, len(ids), _ID_CHUNK):
        q = select(_runs.c.id, _runs.c.seed, *cols).where(
            _runs.c.id.in_(ids[start : start + _ID_CHUNK]), _runs.c.status == "pruned"
        )
        out.update({int(r): (int(seed), e, v, t) for r, seed, e, v, t in session.execute(q)})
    return out
