"""The reliability side of the runs table: expired leases, lost messages, cancel and retry.

Plain functions taking a Session, like service.db.repository (the caller commits). A run's
lease is its heartbeat_at (database time, renewed by every fenced write); its fencing token
is its attempt, which only a claim increments and nothing ever lowers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from service.db.bulk import insert_epoch_rows
from service.db.models import RUN_STATUSES, Checkpoint, EpochMetric, Run, RunWeights, Sweep
from service.db.repository import _SUMMARY_FIELDS, StaleAttempt, requeue_values
from service.db.types import db_ago, db_now

_runs: Table = Run.__table__  # type: ignore[assignment]

# Statuses `bplab sweep retry` may re-queue: the finished ones that did not succeed.
RETRYABLE = ("failed", "diverged", "cancelled")
# Retried only when asked for (`sweep retry --pruned`), and then trained to the end: a
# retried pruned run is exempt from its sweep's early_terminate rule.
RETRY_ON_REQUEST = ("pruned",)
# Ids per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits.
_ID_CHUNK = 5000


def bound_idle_transaction(session: Session, seconds: float) -> None:
    """PostgreSQL: end this transaction's session if it sits idle for ``seconds``.

    A worker stopped in the middle of a write (SIGSTOP, a VM pause, a debugger) would otherwise
    hold its run's row lock for as long as it stays stopped, and no reconciler could take the
    run back. With this the server drops it; the worker, if it ever wakes, gets a connection
    error, retries, and is fenced off. SQLite: nothing to do (one local machine).
    """
    if session.get_bind().dialect.name == "postgresql":
        ms = max(1000, int(seconds * 1000))
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {ms}"))


def run_state(session: Session, run_id: int) -> tuple[str, int] | None:
    """(status, attempt) of a run as the database has it now; None if there is no such run."""
    row = session.execute(
        select(_runs.c.status, _runs.c.attempt).where(_runs.c.id == run_id)
    ).one_or_none()
    return None if row is None else (row[0], int(row[1]))


def _scope(sweep_id: int | None, backend: str | None) -> list[Any]:
    cond: list[Any] = []
    if sweep_id is not None:
        cond.append(_runs.c.sweep_id == sweep_id)
    if backend is not None:
        cond.append(_runs.c.sweep_id.in_(select(Sweep.id).where(Sweep.backend == backend)))
    return cond


def expire_leases(
    session: Session,
    *,
    lease_s: float,
    max_attempts: int,
    sweep_id: int | None = None,
    backend: str | None = None,
) -> tuple[list[int], list[int]]:
    """Take back the running runs whose lease expired; returns (requeued ids, failed ids).

    A run whose heartbeat is older than lease_s seconds (database time) belongs to a worker
    that died or stalled. It goes back to 'queued' (attempt kept: the next claim increments
    it, and the stalled worker's late writes are fenced off), unless it has already used
    max_attempts tries since its last retry: then it is 'failed', so a run that kills its
    process every time does not loop forever. Both UPDATEs re-check the lease row by row,
    so a heartbeat that lands meanwhile keeps its run.
    """
    lapsed = [
        _runs.c.status == "running",
        _runs.c.heartbeat_at.is_(None) | (_runs.c.heartbeat_at <= db_ago(lease_s)),
    ]
    # SKIP LOCKED (PostgreSQL; SQLite has no row locks): a row locked by a transaction that is
    # still open, e.g. of a worker stopped in the middle of a write, is left for a later pass
    # instead of making the reconciler wait for it.
    unlocked = (
        select(_runs.c.id)
        .where(*lapsed, *_scope(sweep_id, backend))
        .with_for_update(skip_locked=True)
    )
    expired = [*lapsed, _runs.c.id.in_(unlocked)]
    exhausted = (_runs.c.attempt - _runs.c.retry_base) >= max_attempts
    conn = session.connection()
    failed = conn.execute(
        update(_runs)
        .where(*expired, exhausted)
        .values(
            status="failed",
            finished_at=db_now(),
            error=(
                f"gave up after {max_attempts} attempt(s) (BPLAB_MAX_ATTEMPTS): the worker of "
                f"the last attempt stopped renewing its {lease_s:g} s lease (it died, was killed "
                "or stalled)"
            ),
        )
        .returning(_runs.c.id)
    ).scalars()
    failed_ids = sorted(failed)
    # Each statement evaluates SKIP LOCKED afresh: a row that was locked during the UPDATE
    # above (so not failed) may be free by now. It must not be re-queued for that: an
    # exhausted run is left running, for a later pass to fail (it let a poison run have a
    # fourth attempt of three).
    requeued = conn.execute(
        update(_runs).where(*expired, ~exhausted).values(requeue_values()).returning(_runs.c.id)
    ).scalars()
    requeued_ids = sorted(requeued)
    session.expire_all()
    return requeued_ids, failed_ids


def queued_waiting(
    session: Session,
    *,
    grace_s: float,
    sweep_id: int | None = None,
    backend: str | None = "celery",
) -> list[int]:
    """Queued runs that have waited more than grace_s seconds since they were last queued or
    published (created_at if never since): the candidates for a lost broker message."""
    since = func.coalesce(_runs.c.queued_at, _runs.c.created_at)
    q = (
        select(_runs.c.id)
        .where(_runs.c.status == "queued", since <= db_ago(grace_s), *_scope(sweep_id, backend))
        .order_by(_runs.c.id)
    )
    return list(session.execute(q).scalars())


def mark_published(session: Session, run_ids: Sequence[int]) -> None:
    """Restart the grace period of queued runs that were just (re)published."""
    conn = session.connection()
    for i in range(0, len(run_ids), _ID_CHUNK):
        chunk = [int(r) for r in run_ids[i : i + _ID_CHUNK]]
        conn.execute(
            update(_runs)
            .where(_runs.c.id.in_(chunk), _runs.c.status == "queued")
            .values(queued_at=db_now())
        )


def cancel_runs(session: Session, sweep_id: int) -> dict[str, int]:
    """Cancel a sweep's unfinished runs; {"queued": n, "running": m} cancelled.

    A queued run is cancelled for good: its message may still be delivered, but only a
    queued run can be claimed. A running run is marked 'cancelled' at once; its worker
    notices at its next heartbeat (about a second), stops training and, fenced on
    (attempt, 'cancelled'), adds the epochs it still holds and its summary.
    """
    out: dict[str, int] = {}
    conn = session.connection()
    for status in ("queued", "running"):
        out[status] = conn.execute(
            update(_runs)
            .where(_runs.c.sweep_id == sweep_id, _runs.c.status == status)
            .values(status="cancelled", finished_at=db_now(), heartbeat_at=None)
        ).rowcount
    # A cancelled run is never resumed (retry starts it from epoch 0): drop the states of
    # runs handed back earlier, as finishing does (service.db.attempts).
    cancelled = select(_runs.c.id).where(
        _runs.c.sweep_id == sweep_id, _runs.c.status == "cancelled"
    )
    conn.execute(delete(Checkpoint.__table__).where(Checkpoint.__table__.c.run_id.in_(cancelled)))
    session.expire_all()
    return out


def record_cancelled(
    session: Session,
    run_id: int,
    attempt: int,
    rows: Sequence[Mapping[str, Any]],
    **summary: Any,
) -> None:
    """The last rows and the summary of an attempt that was cancelled while it trained.

    Fenced like every other write, on (attempt, status 'cancelled') instead of 'running':
    once the run is retried (queued, or claimed by a newer attempt) this is refused.
    """
    bad = sorted(set(summary) - set(_SUMMARY_FIELDS))
    if bad:
        raise ValueError(f"not a summary field: {bad[0]}")
    stmt = (
        update(_runs)
        .where(_runs.c.id == run_id, _runs.c.attempt == attempt, _runs.c.status == "cancelled")
        .values(**summary)
    )
    conn = session.connection()
    if conn.execute(stmt).rowcount != 1:
        raise StaleAttempt(run_id, attempt)
    insert_epoch_rows(conn, run_id, rows)


def retry_runs(session: Session, sweep_id: int, statuses: Iterable[str] = RETRYABLE) -> list[int]:
    """Re-queue a sweep's runs in the given finished statuses; their ids.

    A retry is a fresh training from epoch 0 with the same seed: the run's epoch rows,
    weights and checkpoint are deleted, so nothing of the old curve mixes with the new
    one. The attempt counter is kept (any straggler of an old attempt stays fenced off)
    and retry_base set to it, so the run gets the full number of attempts again.
    """
    statuses = list(statuses)
    bad = sorted(set(statuses) - set(RETRYABLE) - set(RETRY_ON_REQUEST))
    if bad:
        valid = ", ".join(RETRYABLE + RETRY_ON_REQUEST)
        known = "unknown status" if bad[0] not in RUN_STATUSES else "cannot retry"
        raise ValueError(f"{known} {bad[0]!r}; retry takes: {valid}")
    conn = session.connection()
    ids = sorted(
        conn.execute(
            update(_runs)
            .where(_runs.c.sweep_id == sweep_id, _runs.c.status.in_(statuses))
            .values({**requeue_values(fresh=True), "retry_base": _runs.c.attempt, **_unpruned()})
            .returning(_runs.c.id)
        ).scalars()
    )
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        for model in (EpochMetric, RunWeights, Checkpoint):
            conn.execute(delete(model).where(model.run_id.in_(chunk)))
    session.expire_all()
    return ids


def _unpruned() -> dict[str, Any]:
    """A retried run forgets why it was pruned; a pruned one is exempt from now on."""
    exempt = or_(_runs.c.prune_exempt, _runs.c.status == "pruned")
    return {
        "pruned_epoch": None,
        "pruned_value": None,
        "pruned_threshold": None,
        "prune_exempt": exempt,
    }


# Any constant below 2**63, distinct from the migration lock (service.db.migrate): "bplabr".
_RECONCILER_LOCK_KEY = 0x62706C616272


def try_reconciler_lock(session: Session) -> bool:
    """Whether this transaction may reconcile: on PostgreSQL a transaction-level advisory lock
    lets one reconciler act at a time (the others skip their turn); on SQLite the write lock
    the transaction began with (BEGIN IMMEDIATE) already does."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _RECONCILER_LOCK_KEY}
        ).scalar_one()
    )


def celery_runs(session: Session, run_ids: Sequence[int]) -> list[int]:
    """Those of ``run_ids`` whose sweep runs on Celery workers."""
    if not run_ids:
        return []
    q = (
        select(_runs.c.id)
        .join(Sweep.__table__, Sweep.__table__.c.id == _runs.c.sweep_id)
        .where(_runs.c.id.in_([int(r) for r in run_ids]), Sweep.__table__.c.backend == "celery")
    )
    return list(session.execute(q).scalars())
