"""Every read and write of the results database, as plain functions taking a Session.

The caller owns the transaction (``with session_scope() as s``); nothing here commits. This
module holds sweeps, runs and configurations; a run's attempts (claim, fence, finish, requeue)
are in service.db.attempts and what an attempt stores (epoch rows, checkpoints, weights) in
service.db.artifacts, both re-exported here so that callers use one name, ``repo``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

# Re-exported: the rest of bplab reaches the database through one name, ``repo``.
from service.db.artifacts import (
    NotFound,
    claimed_checkpoints,
    claimed_runs,
    dialect_insert,
    epoch_rows,
    load_checkpoint,
    load_weights,
    record_epochs,
    save_checkpoint,
    save_weights,
    upsert_by_run,
)
from service.db.attempts import (
    _SUMMARY_FIELDS,
    StaleAttempt,
    claim_run,
    claim_runs,
    fail_run,
    finish_run,
    finish_runs,
    heartbeat,
    release_run,
    requeue_runs,
    requeue_stale_runs,
    requeue_values,
)
from service.db.blobs import BlobError as BlobError  # re-exported: callers catch repo.BlobError
from service.db.bulk import EPOCH_FIELDS as EPOCH_FIELDS  # re-exported
from service.db.models import (
    RUN_STATUSES,
    Run,
    Sweep,
)

_runs: Table = Run.__table__  # type: ignore[assignment]
log = logging.getLogger("bplab.runner")

# --- configurations -----------------------------------------------------------------


def canonical_json(config: Mapping[str, Any]) -> str:
    """The one JSON text of a configuration: sorted keys, no spaces, no NaN."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


# Parameters added after configurations were first recorded, at the value that leaves training
# as it was. A configuration holding one at that value is the same configuration as one recorded
# before the parameter existed (sweep extend, the search's rebuilt study and `best` group runs by
# config_key), so the parameter is left out of its identity.
NEUTRAL_LATER_PARAMETERS: dict[str, Any] = {
    "decay": 0.0,
    "decay_biases": True,
    "error_margin": 0.0,
    "patience": 0,
    "min_delta": 0.0,
    "restore_best": False,
    "kernels": None,  # issue 21: no tied layer ...
    "field": 3,  # ... whose field then means nothing
    "wrap": False,
    "recurrent": False,
    "dtype": "float64",  # issue 22: before float32, every run computed in float64
}


def config_key(config: Mapping[str, Any]) -> str:
    """sha256 of canonical_json(config) without the neutral later parameters: the identity of
    a configuration across seeds."""
    identity = {
        k: v
        for k, v in config.items()
        if k not in NEUTRAL_LATER_PARAMETERS or v != NEUTRAL_LATER_PARAMETERS[k]
    }
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def derived_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    """The runs columns copied out of a run configuration (the contract in common.md)."""
    try:
        init = config["init"]
        batch_size = config["batch_size"]
        return {
            "dataset": str(config["dataset"]),
            "learning_rate": float(config["learning_rate"]),
            "momentum": float(config["momentum"]),
            "hidden": "-".join(str(int(h)) for h in config["hidden"]),
            "cost": str(config["cost"]),
            "activation": str(config["activation"]),
            "output_activation": str(config["output_activation"]),
            "optimizer": str(config["optimizer"]),
            "batch_size": None if batch_size in (None, "full") else int(batch_size),
            "weight_decay": float(config["weight_decay"]),
            # A number as its float repr ("1.0", never "1") so equal inits group together.
            "init": init if isinstance(init, str) else repr(float(init)),
            "epochs": int(config["epochs"]),
        }
    except KeyError as exc:
        raise ValueError(f"run configuration lacks the key {exc.args[0]!r}") from None


# --- sweeps and their runs -----------------------------------------------------------


def create_sweep(
    session: Session,
    *,
    name: str,
    dataset: str,
    method: str,
    spec: Mapping[str, Any],
    swept: Sequence[str],
    backend: str,
    runs: Sequence[Mapping[str, Any]],
) -> int:
    """Insert a sweep and all its runs (each {"config": dict, "seed": int}); its id.

    The runs go in as one executemany (no ORM object per run), so 10,000 runs take a
    fraction of a second. Commit (or roll back) belongs to the caller, so a sweep and its
    runs land together or not at all.
    """
    sweep = Sweep(
        name=name,
        dataset=dataset,
        method=method,
        spec=dict(spec),
        swept=list(swept),
        n_runs=len(runs),
        backend=backend,
    )
    session.add(sweep)
    session.flush()
    rows = []
    # A sweep repeats each configuration once per seed, usually as the same dict object:
    # hash and derive it once (keyed by id(), valid while runs holds the objects).
    derived: dict[int, dict[str, Any]] = {}
    for run in runs:
        config = run["config"]
        columns = derived.get(id(config))
        if columns is None:
            columns = derived[id(config)] = {
                "config_key": config_key(config),
                **derived_columns(config),
            }
        rows.append(
            {
                "sweep_id": sweep.id,
                "config": config,
                "seed": int(run["seed"]),
                "status": "queued",
                "attempt": 0,
                **columns,
            }
        )
    if rows:
        session.connection().execute(insert(_runs), rows)
    return sweep.id


def get_sweep(session: Session, sweep_id: int) -> Sweep | None:
    return session.get(Sweep, sweep_id)


def list_sweeps(session: Session) -> list[dict[str, Any]]:
    """One flat dict per sweep (oldest first): id, name, dataset, method, backend, runs,
    created_at, and the number of runs in each status (every status present)."""
    sweeps = session.scalars(select(Sweep).order_by(Sweep.id)).all()
    counts: dict[int, dict[str, int]] = {s.id: dict.fromkeys(RUN_STATUSES, 0) for s in sweeps}
    q = select(Run.sweep_id, Run.status, func.count()).group_by(Run.sweep_id, Run.status)
    for sweep_id, status, n in session.execute(q):
        if sweep_id in counts:
            counts[sweep_id][status] = n
    return [
        {
            "id": s.id,
            "name": s.name,
            "dataset": s.dataset,
            "method": s.method,
            "backend": s.backend,
            "runs": s.n_runs,
            "created_at": s.created_at,
            **counts[s.id],
        }
        for s in sweeps
    ]


def sweep_timing(session: Session, sweep_id: int) -> dict[str, Any]:
    """When a sweep's runs started and finished: first_started_at, last_finished_at,
    elapsed_s (between the two, None until both exist), total_wall_time_s and
    mean_wall_time_s (over runs that reported one)."""
    first, last, total, mean = session.execute(
        select(
            func.min(Run.started_at),
            func.max(Run.finished_at),
            func.sum(Run.wall_time_s),
            func.avg(Run.wall_time_s),
        ).where(Run.sweep_id == sweep_id)
    ).one()
    return {
        "first_started_at": first,
        "last_finished_at": last,
        "elapsed_s": (last - first).total_seconds() if first and last else None,
        "total_wall_time_s": total,
        "mean_wall_time_s": mean,
    }


def status_counts(session: Session, sweep_id: int) -> dict[str, int]:
    """{status: number of runs} for one sweep, every status present (zeros included)."""
    counts = dict.fromkeys(RUN_STATUSES, 0)
    q = select(Run.status, func.count()).where(Run.sweep_id == sweep_id).group_by(Run.status)
    for status, n in session.execute(q):
        counts[status] = n
    return counts


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


_SORTABLE = frozenset(c.name for c in _runs.columns if c.name != "config")


def list_runs(
    session: Session,
    sweep_id: int,
    status: str | Iterable[str] | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> list[Run]:
    """Runs of a sweep, by id unless sort names a runs column ("-col" for descending).

    NULLs sort last either way (an unfinished run has no loss yet). status may be one
    status or several.
    """
    q = select(Run).where(Run.sweep_id == sweep_id)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        bad = sorted(set(statuses) - set(RUN_STATUSES))
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}; valid: {', '.join(RUN_STATUSES)}")
        q = q.where(Run.status.in_(statuses))
    if sort:
        name = sort.lstrip("-")
        if name not in _SORTABLE:
            raise ValueError(f"cannot sort by {name!r}; valid: {', '.join(sorted(_SORTABLE))}")
        col = _runs.c[name]
        q = q.order_by((col.desc() if sort.startswith("-") else col.asc()).nulls_last())
    q = q.order_by(Run.id)
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))


def run_ids(session: Session, sweep_id: int, status: str | None = None) -> list[int]:
    """Ids of a sweep's runs in id order (e.g. to publish them after the commit)."""
    q = select(Run.id).where(Run.sweep_id == sweep_id).order_by(Run.id)
    if status is not None:
        q = q.where(Run.status == status)
    return list(session.scalars(q))


__all__ = [
    "NotFound",
    "StaleAttempt",
    "_SUMMARY_FIELDS",
    "canonical_json",
    "claim_run",
    "claim_runs",
    "claimed_checkpoints",
    "claimed_runs",
    "config_key",
    "create_sweep",
    "derived_columns",
    "dialect_insert",
    "epoch_rows",
    "fail_run",
    "finish_run",
    "finish_runs",
    "get_run",
    "get_sweep",
    "heartbeat",
    "list_runs",
    "list_sweeps",
    "load_checkpoint",
    "load_weights",
    "record_epochs",
    "release_run",
    "requeue_runs",
    "requeue_stale_runs",
    "requeue_values",
    "run_ids",
    "save_checkpoint",
    "save_weights",
    "status_counts",
    "sweep_timing",
    "upsert_by_run",
]
