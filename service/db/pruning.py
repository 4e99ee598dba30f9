"""The SQL of early stopping (issue 15): what a pruning decision reads and what it records.

Plain functions taking a Session, like the rest of service.db (the caller commits). The
rule itself (service.pruning) only ever sees Python values: a decision is made from the
epoch rows every worker writes, so it holds the same on the local pool and on Celery
workers on many machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, and_, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.db.models import EpochMetric, PrunedConfig, Run, Sweep

_runs: Table = Run.__table__  # type: ignore[assignment]
_epochs: Table = EpochMetric.__table__  # type: ignore[assignment]
_pruned: Table = PrunedConfig.__table__  # type: ignore[assignment]
_sweeps: Table = Sweep.__table__  # type: ignore[assignment]

# A finished run's last value stands for every later epoch: it reached the end (or diverged,
# which a rule reads as the worst value). Pruned, failed and cancelled runs that stopped
# before an epoch say nothing about it.
_ENDED = ("succeeded", "diverged")


def run_rules(
    session: Session, run_ids: Sequence[int]
) -> dict[int, tuple[int, str, bool, dict[str, Any] | None]]:
    """{run_id: (sweep_id, config_key, prune_exempt, the sweep's early_terminate or None)}."""
    if not run_ids:
        return {}
    q = (
        select(
            _runs.c.id, _runs.c.sweep_id, _runs.c.config_key, _runs.c.prune_exempt, _sweeps.c.spec
        )
        .join(_sweeps, _sweeps.c.id == _runs.c.sweep_id)
        .where(_runs.c.id.in_([int(r) for r in run_ids]))
    )
    out = {}
    for run_id, sweep_id, key, exempt, spec in session.execute(q):
        rule = (spec or {}).get("early_terminate")
        out[int(run_id)] = (int(sweep_id), str(key), bool(exempt), rule)
    return out


def config_order(session: Session, sweep_id: int) -> dict[str, int]:
    """{config_key: its place in the sweep} by first run id: the order the sweep recorded its
    configurations in, the same for every worker (hyperband's brackets follow it)."""
    q = (
        select(_runs.c.config_key, func.min(_runs.c.id).label("first"))
        .where(_runs.c.sweep_id == sweep_id)
        .group_by(_runs.c.config_key)
        .order_by("first")
    )
    return {str(key): i for i, (key, _first) in enumerate(session.execute(q))}


def values_at(
    session: Session, sweep_id: int, metric: str, epoch: int
) -> list[tuple[int, str, float | None]]:
    """(run_id, config_key, value) of every run of the sweep that reached ``epoch`` or ended
    before it: the value is the run's last recorded one at or before ``epoch``."""
    col = _epochs.c[metric]
    last = (
        select(col)
        .where(_epochs.c.run_id == _runs.c.id, _epochs.c.epoch <= epoch)
        .order_by(_epochs.c.epoch.desc())
        .limit(1)
        .scalar_subquery()
    )
    reached = exists().where(and_(_epochs.c.run_id == _runs.c.id, _epochs.c.epoch >= epoch))
    q = select(_runs.c.id, _runs.c.config_key, last).where(
        _runs.c.sweep_id == sweep_id, or_(reached, _runs.c.status.in_(_ENDED))
    )
    return [(int(r), str(k), None if v is None else float(v)) for r, k, v in session.execute(q)]


def record_pruned_config(
    session: Session, sweep_id: int, config_key: str, epoch: int, value: float, threshold: float
) -> tuple[int, float | None, float | None]:
    """Record that a configuration is pruned; the decision that stands, (epoch, value,
    threshold): the first one recorded wins, whoever made it (insert or ignore)."""
    row = {
        "sweep_id": sweep_id,
        "config_key": config_key,
        "epoch": epoch,
        "value": value,
        "threshold": threshold,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(_pruned)
        .values(row)
        .on_conflict_do_nothing(index_elements=["sweep_id", "config_key"])
    )
    session.connection().execute(stmt)
    return pruned_configs(session, sweep_id, [config_key])[config_key]


def pruned_configs(
    session: Session, sweep_id: int, config_keys: Iterable[str]
) -> dict[str, tuple[int, float | None, float | None]]:
    """{config_key: (epoch, value, threshold)} for those of the keys a rule has pruned."""
    keys = sorted(set(config_keys))
    if not keys:
        return {}
    q = select(_pruned.c.config_key, _pruned.c.epoch, _pruned.c.value, _pruned.c.threshold).where(
        _pruned.c.sweep_id == sweep_id, _pruned.c.config_key.in_(keys)
    )
    return {str(k): (int(e), v, t) for k, e, v, t in session.execute(q)}


def pruned_summary(session: Session, sweep_id: int) -> dict[str, Any]:
    """How a sweep's pruning went: runs pruned, configurations pruned, epochs trained."""
    runs = session.execute(
        select(
            func.count().filter(_runs.c.status == "pruned"),
            func.coalesce(func.sum(_runs.c.epochs_run), 0),
            func.coalesce(func.sum(_runs.c.epochs), 0),
            func.count(_runs.c.stopped_epoch),
        ).where(_runs.c.sweep_id == sweep_id)
    ).one()
    configs = session.execute(
        select(func.count()).select_from(_pruned).where(_pruned.c.sweep_id == sweep_id)
    ).scalar_one()
    return {
        "pruned_runs": int(runs[0]),
        "pruned_configs": int(configs),
        "epochs_trained": int(runs[1]),
        "epochs_full": int(runs[2]),
        "stopped_runs": int(runs[3]),  # stopped by patience (per-run early stopping)
    }


__all__ = [
    "config_order",
    "pruned_configs",
    "pruned_summary",
    "record_pruned_config",
    "run_rules",
    "values_at",
]
