"""The SQL of managing sweeps (issue 19): extend, delete, rename, notes, tags, data hashes.

The caller owns the transaction, as everywhere in service/db: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from service.db.models import (
    Checkpoint,
    EpochMetric,
    Run,
    RunWeights,
    Sweep,
    SweepTag,
)
from service.db.repository import config_key, derived_columns

_runs: Table = Run.__table__  # type: ignore[assignment]
_tags: Table = SweepTag.__table__  # type: ignore[assignment]


class SweepBusy(Exception):
    """The sweep has running runs: it cannot be deleted until they stop."""


def lock_sweep(session: Session, sweep_id: int) -> Sweep | None:
    """The sweep row, locked until the transaction ends (PostgreSQL; SQLite's write
    transactions are already exclusive), so that two extends of one sweep take turns."""
    return session.scalars(
        select(Sweep).where(Sweep.id == sweep_id).with_for_update()
    ).one_or_none()


def sweep_cells(session: Session, sweep_id: int) -> list[tuple[str, dict[str, Any], int]]:
    """(config_key, config, seed) of every run of the sweep, in run order."""
    q = select(Run.config_key, Run.config, Run.seed).where(Run.sweep_id == sweep_id)
    return [(k, dict(c), int(s)) for k, c, s in session.execute(q.order_by(Run.id))]


def add_runs(
    session: Session,
    sweep: Sweep,
    runs: Sequence[Mapping[str, Any]],
    *,
    spec: dict[str, Any],
    swept: Sequence[str],
) -> list[int]:
    """Insert queued runs ({"config", "seed"}) into a locked sweep and update its run count,
    swept parameters and spec; the new run ids. The unique (sweep, config, seed) index turns
    a cell recorded twice into an IntegrityError: the caller's transaction rolls back."""
    rows = []
    for run in runs:
        config = run["config"]
        rows.append(
            {
                "sweep_id": sweep.id,
                "config": config,
                "config_key": config_key(config),
                "seed": int(run["seed"]),
                "status": "queued",
                "attempt": 0,
                **derived_columns(config),
            }
        )
    before = session.scalar(select(func.max(Run.id)).where(Run.sweep_id == sweep.id)) or 0
    if rows:
        session.connection().execute(insert(_runs), rows)
    total = session.scalar(select(func.count()).where(Run.sweep_id == sweep.id)) or 0
    sweep.n_runs = int(total)
    sweep.spec = spec
    sweep.swept = list(swept)
    session.flush()
    new = select(Run.id).where(Run.sweep_id == sweep.id, Run.id > before).order_by(Run.id)
    return list(session.scalars(new))


def running_count(session: Session, sweep_id: int) -> int:
    q = select(func.count()).where(Run.sweep_id == sweep_id, Run.status == "running")
    return int(session.scalar(q) or 0)


def delete_sweep(session: Session, sweep_id: int) -> dict[str, int]:
    """Delete the sweep with its runs, epoch rows, weights, checkpoints and tags; how many of
    each went. SweepBusy (nothing deleted) while a run is running.

    The runs' rows are locked first (PostgreSQL), so a worker cannot claim one between the
    check and the delete: its claim waits, then finds no row, and trains nothing.
    """
    statuses = session.scalars(
        select(Run.status).where(Run.sweep_id == sweep_id).with_for_update()
    ).all()
    running = sum(1 for s in statuses if s == "running")
    if running:
        raise SweepBusy(f"{running} run(s) running")
    in_sweep = select(Run.id).where(Run.sweep_id == sweep_id).scalar_subquery()
    counts = {"runs": len(statuses)}
    for name, model in (
        ("epoch_rows", EpochMetric),
        ("weights", RunWeights),
        ("checkpoints", Checkpoint),
    ):
        table: Table = model.__table__  # type: ignore[assignment]
        # Explicit deletes, children first: the same statements on both databases, whatever
        # a connection's foreign-key setting, and each reports what it removed.
        counts[name] = session.execute(delete(table).where(table.c.run_id.in_(in_sweep))).rowcount
    session.execute(delete(_tags).where(_tags.c.sweep_id == sweep_id))
    session.execute(delete(_runs).where(_runs.c.sweep_id == sweep_id))
    # Other per-sweep tables (search trials and leases) go with the sweep by ON DELETE CASCADE.
    session.execute(delete(Sweep.__table__).where(Sweep.__table__.c.id == sweep_id))
    session.expire_all()
    return counts


def rename_sweep(session: Session, sweep_id: int, name: str) -> None:
    session.execute(
        update(Sweep.__table__).where(Sweep.__table__.c.id == sweep_id).values(name=name)
    )


def set_note(session: Session, sweep_id: int, note: str | None) -> None:
    session.execute(
        update(Sweep.__table__).where(Sweep.__table__.c.id == sweep_id).values(note=note)
    )


def set_data_hash(session: Session, sweep_id: int, digest: str | None) -> None:
    table = Sweep.__table__
    session.execute(update(table).where(table.c.id == sweep_id).values(data_sha256=digest))


def set_tags(session: Session, sweep_id: int, tags: Mapping[str, str]) -> None:
    """Set (or replace) these tags of the sweep."""
    if not tags:
        return
    session.execute(delete(_tags).where(_tags.c.sweep_id == sweep_id, _tags.c.key.in_(list(tags))))
    session.execute(
        insert(_tags), [{"sweep_id": sweep_id, "key": k, "value": v} for k, v in tags.items()]
    )


def remove_tags(session: Session, sweep_id: int, keys: Sequence[str]) -> int:
    q = delete(_tags).where(_tags.c.sweep_id == sweep_id, _tags.c.key.in_(list(keys)))
    return int(session.execute(q).rowcount)


def tags_of(session: Session, sweep_ids: Sequence[int] | None = None) -> dict[int, dict[str, str]]:
    """{sweep id: {key: value}} for the given sweeps (all when None), keys sorted."""
    q = select(_tags.c.sweep_id, _tags.c.key, _tags.c.value).order_by(_tags.c.key)
    if sweep_ids is not None:
        q = q.where(_tags.c.sweep_id.in_(list(sweep_ids)))
    out: dict[int, dict[str, str]] = {}
    for sweep_id, key, value in session.execute(q):
        out.setdefault(sweep_id, {})[key] = value
    return out


def notes_of(session: Session, sweep_ids: Sequence[int]) -> dict[int, str | None]:
    q = select(Sweep.id, Sweep.note).where(Sweep.id.in_(list(sweep_ids)))
    return {sweep_id: note for sweep_id, note in session.execute(q)}


def matching_sweep_ids(
    session: Session,
    *,
    name: str | None = None,
    dataset: str | None = None,
    tags: Sequence[tuple[str, str | None]] = (),
) -> list[int]:
    """Ids of the sweeps whose name and dataset contain these texts (case-insensitive) and
    that carry every tag (key=value, or just the key when the value is None)."""
    q = select(Sweep.id)
    if name:
        q = q.where(func.lower(Sweep.name).contains(name.lower(), autoescape=True))
    if dataset:
        q = q.where(func.lower(Sweep.dataset).contains(dataset.lower(), autoescape=True))
    for key, value in tags:
        has = select(_tags.c.sweep_id).where(_tags.c.key == key)
        if value is not None:
            has = has.where(_tags.c.value == value)
        q = q.where(Sweep.id.in_(has))
    return list(session.scalars(q.order_by(Sweep.id)))


__all__ = [
    "SweepBusy",
    "add_runs",
    "delete_sweep",
    "lock_sweep",
    "matching_sweep_ids",
    "notes_of",
    "remove_tags",
    "rename_sweep",
    "running_count",
    "set_data_hash",
    "set_note",
    "set_tags",
    "sweep_cells",
    "tags_of",
]
