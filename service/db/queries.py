"""The read queries behind results, curves, export and grouping: every SELECT bplab runs
outside a run's own life cycle (service.db.attempts) lives here or in service.db.repository."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Float, Table, cast, func, select
from sqlalchemy.orm import Session

from service.db.models import EpochMetric, Run

_epochs: Table = EpochMetric.__table__  # type: ignore[assignment]
_runs: Table = Run.__table__  # type: ignore[assignment]

# A run id list is sent in chunks: SQLite allows at most 32,766 bound parameters a statement.
_ID_CHUNK = 5000


def epoch_metric_rows(
    session: Session,
    metrics: Sequence[str],
    *,
    sweep_id: int | None = None,
    run_ids: Iterable[int] | None = None,
) -> list[tuple[Any, ...]]:
    """(run_id, epoch, *metrics) of every recorded epoch of a sweep or of some runs, ordered by
    run and epoch, in one query. Through the ORM's table, so SafeFloat turns SQLite's stored
    'NaN' back into a float; a metric not recorded is None."""
    q = select(_epochs.c.run_id, _epochs.c.epoch, *(_epochs.c[m] for m in metrics))
    if sweep_id is not None:
        q = q.join(_runs, _runs.c.id == _epochs.c.run_id).where(_runs.c.sweep_id == sweep_id)
    if run_ids is not None:
        q = q.where(_epochs.c.run_id.in_(list(run_ids)))
    return [tuple(r) for r in session.execute(q.order_by(_epochs.c.run_id, _epochs.c.epoch))]


def sweep_curve_rows(
    session: Session, sweep_id: int, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """Every recorded epoch of the sweep as a dict of ``columns``, ordered by run and epoch."""
    q = (
        select(*(_epochs.c[c] for c in columns))
        .join(_runs, _runs.c.id == _epochs.c.run_id)
        .where(_runs.c.sweep_id == sweep_id)
        .order_by(_epochs.c.run_id, _epochs.c.epoch)
    )
    return [dict(row._mapping) for row in session.execute(q)]


def run_configs(session: Session, run_ids: Sequence[int]) -> dict[int, tuple[dict[str, Any], int]]:
    """{run id: (config, seed)} of stored runs (ids that do not exist are left out)."""
    ids = [int(r) for r in run_ids]
    found: dict[int, tuple[dict[str, Any], int]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        q = select(_runs.c.id, _runs.c.config, _runs.c.seed).where(
            _runs.c.id.in_(ids[start : start + _ID_CHUNK])
        )
        for rid, config, seed in session.execute(q):
            found[int(rid)] = (dict(config), int(seed))
    return found


def last_val_accuracy(session: Session, sweep_id: int) -> dict[int, float | None]:
    """{run id: val_accuracy of its last recorded epoch} for the sweep's runs that have epochs.

    The runs table keeps val_loss but not val_accuracy, so a run's final validation
    accuracy is read from its last epoch row (the unique (run_id, epoch) index finds it).
    """
    last = (
        select(_epochs.c.run_id, func.max(_epochs.c.epoch).label("epoch"))
        .join(_runs, _runs.c.id == _epochs.c.run_id)
        .where(_runs.c.sweep_id == sweep_id)
        .group_by(_epochs.c.run_id)
        .subquery()
    )
    q = select(_epochs.c.run_id, _epochs.c.val_accuracy).join(
        last, (last.c.run_id == _epochs.c.run_id) & (last.c.epoch == _epochs.c.epoch)
    )
    return {int(rid): value for rid, value in session.execute(q)}


def running_epochs(session: Session, sweep_id: int) -> tuple[float, int]:
    """How far the sweep's running runs have got: (the sum over them of last recorded epoch /
    epochs, in runs; the sum of their last recorded epochs).

    What a progress bar adds to its finished runs so that it moves while a long population
    trains: one aggregate over the running runs' epoch rows (their index is (run_id, epoch)),
    cheap enough to poll every second.
    """
    running = select(_runs.c.id).where(_runs.c.sweep_id == sweep_id, _runs.c.status == "running")
    last = (
        select(_epochs.c.run_id, func.max(_epochs.c.epoch).label("epoch"))
        .where(_epochs.c.run_id.in_(running))
        .group_by(_epochs.c.run_id)
        .subquery()
    )
    q = select(
        func.sum(cast(last.c.epoch, Float) / func.nullif(_runs.c.epochs, 0)),
        func.sum(last.c.epoch),
    ).join(_runs, _runs.c.id == last.c.run_id)
    fraction, epochs = session.execute(q).one()
    return float(fraction or 0.0), int(epochs or 0)
