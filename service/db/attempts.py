"""A run's attempts: claim, fence, heartbeat, finish, fail, hand back, requeue.

Fencing: a run being trained is owned by one attempt (runs.attempt, incremented by every
claim). Each write on behalf of a running run takes (run_id, attempt) and first performs
``UPDATE runs SET heartbeat_at = <database time> WHERE id = :id AND attempt = :attempt AND
status = 'running'``; no matching row means a newer attempt (or a cancel, or a requeue)
took the run over, and StaleAttempt is raised before anything is written. On PostgreSQL
that UPDATE also locks the row until commit, so a concurrent re-claim waits for the
batch to land or roll back rather than interleaving with it.

The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from service.db.models import RUN_STATUSES, TERMINAL_STATUSES, Checkpoint, Run
from service.db.types import db_ago, db_now

_runs: Table = Run.__table__  # type: ignore[assignment]

_SUMMARY_FIELDS = (
    "epochs_run",
    "final_loss",
    "best_loss",
    "accuracy",
    "val_loss",
    "solved_epoch",
    "wall_time_s",
    "best_epoch",
    "stopped_epoch",
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
    finished = session.connection().execute(stmt, params).rowcount == len(items)
    drop_finished_checkpoints(session, [r for r, _a, _sm in items])
    return finished


def drop_finished_checkpoints(session: Session, run_ids: Sequence[int]) -> int:
    """Delete the checkpoints of those runs that have ended; how many went.

    A finished run is never resumed (a retry starts from epoch 0), so its training state
    would only take room: for a large net as much as its weights again, per run. Done in
    the finishing transaction, so a run never ends with a checkpoint left behind.
    """
    if not run_ids:
        return 0
    table: Table = Checkpoint.__table__  # type: ignore[assignment]
    ended = select(_runs.c.id).where(
        _runs.c.id.in_(list(run_ids)), _runs.c.status.in_(TERMINAL_STATUSES)
    )
    return int(
        session.connection().execute(delete(table).where(table.c.run_id.in_(ended))).rowcount
    )


def _finish_value(key: str) -> Any:
    # A note this attempt left in ``error`` (a discarded checkpoint) outlives a summary that
    # has no error of its own.
    if key == "error":
        return func.coalesce(bindparam(key), _runs.c.error)
    return bindparam(key)


def fail_run(session: Session, run_id: int, attempt: int, error: str) -> None:
    """End a running attempt as failed with the error text (fenced)."""
    _fenced_update(session, run_id, attempt, status="failed", finished_at=db_now(), error=error)
    drop_finished_checkpoints(session, [run_id])
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
