"""Every read and write of the results database, as plain functions taking a Session.

The caller owns the transaction (``with session_scope() as s``); nothing here commits.

Fencing: a run being trained is owned by one attempt (runs.attempt, incremented by every
claim). Each write on behalf of a running run takes (run_id, attempt) and first performs
``UPDATE runs SET heartbeat_at = <database time> WHERE id = :id AND attempt = :attempt AND
status = 'running'``; no matching row means a newer attempt (or a cancel, or a requeue)
took the run over, and StaleAttempt is raised before anything is written. On PostgreSQL
that UPDATE also locks the row until commit, so a concurrent re-claim waits for the
batch to land or roll back rather than interleaving with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from service.db.blobs import BlobError as BlobError  # re-exported: callers catch repo.BlobError
from service.db.blobs import pack_arrays, sha256_hex, unpack_arrays, verify_sha256
from service.db.bulk import EPOCH_FIELDS as EPOCH_FIELDS  # re-exported
from service.db.bulk import insert_epoch_rows_fenced
from service.db.models import (
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Checkpoint,
    EpochMetric,
    Run,
    RunWeights,
    Sweep,
)
from service.db.types import db_ago, db_now

_runs: Table = Run.__table__  # type: ignore[assignment]
log = logging.getLogger("bplab.runner")

_SUMMARY_FIELDS = (
    "epochs_run",
    "final_loss",
    "best_loss",
    "accuracy",
    "val_loss",
    "solved_epoch",
    "wall_time_s",
)


class StaleAttempt(RuntimeError):
    """A write for an attempt that no longer owns its run; nothing was written."""

    def __init__(self, run_id: int, attempt: int) -> None:
        super().__init__(
            f"run {run_id}: attempt {attempt} is no longer the running attempt"
            " (re-claimed, cancelled or requeued); its write was rejected"
        )
        self.run_id = run_id
        self.attempt = attempt


class NotFound(LookupError):
    """The requested row does not exist."""


# --- configurations -----------------------------------------------------------------


def canonical_json(config: Mapping[str, Any]) -> str:
    """The one JSON text of a configuration: sorted keys, no spaces, no NaN."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_key(config: Mapping[str, Any]) -> str:
    """sha256 of canonical_json(config): the identity of a configuration across seeds."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


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


# --- claiming and fencing ------------------------------------------------------------


def _expire_run(session: Session, run_id: int) -> None:
    # Writes go through Core for speed; a Run this session already loaded must not keep
    # showing the old status/attempt.
    obj = session.identity_map.get(identity_key(Run, run_id))
    if obj is not None:
        session.expire(obj)


def claim_run(session: Session, run_id: int, worker: str) -> int | None:
    """Take a queued run (queued -> running, attempt + 1); the new attempt, or None.

    None means the run is not queued (another worker has it, or it is finished or
    cancelled): a second delivery of the same task must then do nothing.
    """
    attempt = claim_runs(session, [run_id], worker).get(run_id)
    _expire_run(session, run_id)
    return attempt


def claim_runs(session: Session, run_ids: Sequence[int], worker: str) -> dict[int, int]:
    """``claim_run`` for many runs in one statement (a population task): each queued run
    among them goes to running with its own attempt + 1, the others are left alone;
    returns {run_id: new attempt} for the runs claimed."""
    if not run_ids:
        return {}
    stmt = (
        update(_runs)
        .where(_runs.c.id.in_([int(r) for r in run_ids]), _runs.c.status == "queued")
        .values(
            status="running",
            attempt=_runs.c.attempt + 1,
            worker=worker,
            started_at=db_now(),
            heartbeat_at=db_now(),
            finished_at=None,
        )
        .returning(_runs.c.id, _runs.c.attempt)
    )
    return {int(r): int(a) for r, a in session.connection().execute(stmt)}


def _fenced_update(session: Session, run_id: int, attempt: int, **values: Any) -> None:
    stmt = (
        update(_runs)
        .where(_runs.c.id == run_id, _runs.c.attempt == attempt, _runs.c.status == "running")
        .values({"heartbeat_at": db_now(), **values})
    )
    if session.connection().execute(stmt).rowcount != 1:
        raise StaleAttempt(run_id, attempt)


def heartbeat(session: Session, run_id: int, attempt: int) -> None:
    """Renew the lease of a running attempt (database time); StaleAttempt if it lost it."""
    _fenced_update(session, run_id, attempt)


# --- recording -----------------------------------------------------------------------


def dialect_insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert
    if name == "postgresql":
        return postgresql.insert
    raise NotImplementedError(f"bplab supports SQLite and PostgreSQL, not {name}")


def record_epochs(
    session: Session, run_id: int, attempt: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Write a batch of epoch rows for a running attempt; existing (run, epoch) kept.

    Each row: {"epoch": int, "loss", "accuracy", "val_loss", "val_accuracy", "max_error"}
    (missing metrics are NULL). The fence doubles as the heartbeat. The rows go in as one
    INSERT ... ON CONFLICT DO NOTHING for the whole batch (service.db.bulk), so replaying a
    batch after a crash or a resume from checkpoint never duplicates an epoch.
    """
    # One statement on PostgreSQL (fence and rows together; COPY for large batches): the
    # recording cost per epoch row is what sweeps of thousands of runs pay.
    if not insert_epoch_rows_fenced(session.connection(), run_id, attempt, rows):
        raise StaleAttempt(run_id, attempt)


def epoch_rows(session: Session, run_id: int) -> list[EpochMetric]:
    """A run's recorded epochs in order."""
    q = select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
    return list(session.scalars(q))


def _upsert(session: Session, model: type[Any], values: dict[str, Any]) -> None:
    table: Table = model.__table__
    stmt = dialect_insert(session)(table).values(**values)
    replace = {k: stmt.excluded[k] for k in values if k != "run_id"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id"], set_={**replace, "created_at": db_now()}
    )
    session.connection().execute(stmt)


def save_weights(session: Session, run_id: int, attempt: int, arrays: Sequence[np.ndarray]) -> None:
    """Store a running attempt's final weights (replacing any earlier attempt's)."""
    data, shapes, dtype, digest = pack_arrays(arrays)
    _fenced_update(session, run_id, attempt)
    _upsert(
        session,
        RunWeights,
        {"run_id": run_id, "data": data, "shapes": shapes, "dtype": dtype, "sha256": digest},
    )


def load_weights(session: Session, run_id: int) -> list[np.ndarray]:
    """A run's final weights, sha256-checked and loaded without pickle (else BlobError)."""
    row = session.get(RunWeights, run_id)
    if row is None:
        raise NotFound(f"run {run_id} has no stored weights")
    return unpack_arrays(row.data, row.shapes, row.sha256, what=f"run {run_id} weights")


def save_checkpoint(session: Session, run_id: int, attempt: int, epoch: int, data: bytes) -> None:
    """Replace the run's checkpoint with the training state after epoch (opaque bytes)."""
    _fenced_update(session, run_id, attempt)
    _upsert(
        session,
        Checkpoint,
        {
            "run_id": run_id,
            "attempt": attempt,
            "epoch": int(epoch),
            "data": bytes(data),
            "sha256": sha256_hex(data),
        },
    )


def load_checkpoint(session: Session, run_id: int) -> tuple[int, bytes] | None:
    """(epoch, state bytes) of the run's latest checkpoint, sha256-checked; None if none."""
    row = session.get(Checkpoint, run_id)
    if row is None:
        return None
    verify_sha256(row.data, row.sha256, f"run {run_id} checkpoint")
    return row.epoch, row.data


def claimed_checkpoints(
    session: Session, attempts: Mapping[int, int]
) -> dict[int, tuple[int, bytes]]:
    """{run id: (epoch, state bytes)}: the checkpoints the just-claimed runs resume from
    (``attempts``: {run id: the attempt that claimed it}).

    A checkpoint whose bytes fail their sha256 check is deleted, in the claim's transaction,
    and its run restarts from epoch 0, which ends in the same weights (a run's numbers follow
    from its config and seed); the run's ``error`` and the log say so. Raising instead rolled
    the claim back and left the run queued at the same attempt with no error, so that the
    reconciler published it again and again, for ever (issue 24).
    """
    found: dict[int, tuple[int, bytes]] = {}
    if not attempts:
        return found
    q = select(Checkpoint.run_id, Checkpoint.epoch, Checkpoint.data, Checkpoint.sha256)
    for run_id, epoch, data, digest in session.execute(
        q.where(Checkpoint.run_id.in_([int(r) for r in attempts]))
    ):
        try:
            verify_sha256(data, digest, f"checkpoint at epoch {epoch}")
        except BlobError as exc:
            _discard_checkpoint(session, int(run_id), attempts[int(run_id)], str(exc))
            continue
        found[int(run_id)] = (int(epoch), bytes(data))
    return found


def _discard_checkpoint(session: Session, run_id: int, attempt: int, reason: str) -> None:
    note = f"attempt {attempt}: {reason.split(';')[0]}; restarted from epoch 0"
    log.warning(
        "run %s: %s; the checkpoint is discarded and the run restarts from epoch 0",
        run_id,
        reason.split(";")[0],
    )
    conn = session.connection()
    conn.execute(delete(Checkpoint.__table__).where(Checkpoint.run_id == run_id))
    conn.execute(update(_runs).where(_runs.c.id == run_id).values(error=note))
    _expire_run(session, run_id)


def claimed_runs(
    session: Session, run_ids: Sequence[int]
) -> dict[int, tuple[dict[str, Any], int, int]]:
    """{run id: (config, seed, retry_base)}: what training needs of the runs just claimed."""
    q = select(Run.id, Run.config, Run.seed, Run.retry_base).where(
        Run.id.in_([int(r) for r in run_ids])
    )
    return {int(r.id): (dict(r.config), int(r.seed), int(r.retry_base)) for r in session.execute(q)}


def upsert_by_run(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert or replace rows of a table keyed by run_id (checkpoints, weights), in one
    statement (as ``_upsert`` does for one); ``created_at`` set by the database. Not fenced:
    the caller holds the fence of every run in its transaction."""
    rows = [r for r in rows if r]
    if not rows:
        return
    table = model.__table__
    stmt = dialect_insert(session)(table).values(rows)
    replace = {k: stmt.excluded[k] for k in rows[0] if k != "run_id"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id"], set_={**replace, "created_at": db_now()}
    )
    session.connection().execute(stmt)


# --- finishing -----------------------------------------------------------------------


def finish_run(
    session: Session,
    run_id: int,
    attempt: int,
    *,
    status: str,
    epochs_run: int | None = None,
    final_loss: float | None = None,
    best_loss: float | None = None,
    accuracy: float | None = None,
    val_loss: float | None = None,
    solved_epoch: int | None = None,
    wall_time_s: float | None = None,
    error: str | None = None,
) -> None:
    """End a running attempt with a terminal status and its summary (fenced)."""
    summary = {
        "status": status,
        "epochs_run": epochs_run,
        "final_loss": final_loss,
        "best_loss": best_loss,
        "accuracy": accuracy,
        "val_loss": val_loss,
        "solved_epoch": solved_epoch,
        "wall_time_s": wall_time_s,
        "error": error,
    }
    if not finish_runs(session, [(run_id, attempt, summary)]):
        raise StaleAttempt(run_id, attempt)
    _expire_run(session, run_id)


def finish_runs(session: Session, items: Sequence[tuple[int, int, Mapping[str, Any]]]) -> bool:
    """``finish_run`` for many runs in one executemany (a population task): items are
    (run_id, attempt, summary) with the same summary keys (status and summary columns).
    True when every run was still its attempt's running run; False (trust none) otherwise."""
    if not items:
        return True
    keys = list(items[0][2])
    for _run_id, _attempt, summary in items:
        if summary.get("status") not in TERMINAL_STATUSES:
            raise ValueError(f"finish status must be one of {', '.join(TERMINAL_STATUSES)}")
    stmt = (
        update(_runs)
        .where(
            _runs.c.id == bindparam("b_id"),
            _runs.c.attempt == bindparam("b_attempt"),
            _runs.c.status == "running",
        )
        .values(finished_at=db_now(), heartbeat_at=db_now(), **{k: _finish_value(k) for k in keys})
    )
    params = [{"b_id": r, "b_attempt": a, **{k: sm[k] for k in keys}} for r, a, sm in items]
    return session.connection().execute(stmt, params).rowcount == len(items)


def _finish_value(key: str) -> Any:
    # A note this attempt left in ``error`` (a discarded checkpoint) outlives a summary that
    # has no error of its own.
    if key == "error":
        return func.coalesce(bindparam(key), _runs.c.error)
    return bindparam(key)


def fail_run(session: Session, run_id: int, attempt: int, error: str) -> None:
    """End a running attempt as failed with the error text (fenced)."""
    _fenced_update(session, run_id, attempt, status="failed", finished_at=db_now(), error=error)
    _expire_run(session, run_id)


def requeue_values(*, fresh: bool = False) -> dict[str, Any]:
    """The column values that put a run back in the queue (the attempt counter is kept, so a
    late write of an earlier attempt stays fenced off). ``fresh``: also forget the summary and
    the error, for a run that will train again from epoch 0."""
    values: dict[str, Any] = {
        "status": "queued",
        "worker": None,
        "started_at": None,
        "heartbeat_at": None,
        "queued_at": db_now(),
    }
    if fresh:
        values.update(finished_at=None, error=None, **dict.fromkeys(_SUMMARY_FIELDS))
    return values


def requeue_runs(session: Session, sweep_id: int, statuses: Iterable[str] = ("running",)) -> int:
    """Put a sweep's runs in the given statuses back to queued; how many were.

    The default serves `sweep resume` of a local sweep whose process died (Ctrl-C, crash):
    its runs left 'running' belong to nobody. The attempt counter is kept, so the next
    claim gets a new attempt and any write of the old one is fenced off. Summaries and
    errors are cleared; epoch rows, weights and checkpoints stay (a resumed run continues
    from its checkpoint, and re-recorded epochs are ignored as duplicates).
    """
    statuses = list(statuses)
    bad = sorted(set(statuses) - set(RUN_STATUSES))
    if bad:
        raise ValueError(f"unknown status {bad[0]!r}; valid: {', '.join(RUN_STATUSES)}")
    stmt = (
        update(_runs)
        .where(_runs.c.sweep_id == sweep_id, _runs.c.status.in_(statuses))
        .values(requeue_values(fresh=True))
    )
    n = session.connection().execute(stmt).rowcount
    session.expire_all()
    return n


def release_run(session: Session, run_id: int, attempt: int) -> None:
    """Hand a running attempt's run back to the queue (it was stopped, e.g. by Ctrl-C).

    Fenced. The attempt counter stays; the checkpoint and epoch rows stay, so the next
    claim resumes where this attempt's last checkpoint left off.
    """
    _fenced_update(session, run_id, attempt, **requeue_values())
    _expire_run(session, run_id)


def requeue_stale_runs(
    session: Session, sweep_id: int | None = None, *, older_than_s: float
) -> int:
    """Re-queue running runs whose lease expired; how many were.

    A run's lease is its heartbeat: a 'running' run whose heartbeat_at is more than
    older_than_s seconds old in database time (or missing) belongs to a dead worker. With
    older_than_s=0 every running run of the sweep is taken back (a local sweep whose
    process is known to be gone). sweep_id None: every sweep. Like requeue_runs, the
    attempt counter is kept, so a late write of the dead attempt is fenced off.
    """
    cond = [
        _runs.c.status == "running",
        (_runs.c.heartbeat_at.is_(None)) | (_runs.c.heartbeat_at <= db_ago(older_than_s)),
    ]
    if sweep_id is not None:
        cond.append(_runs.c.sweep_id == sweep_id)
    stmt = update(_runs).where(*cond).values(requeue_values())
    n = session.connection().execute(stmt).rowcount
    session.expire_all()
    return n
