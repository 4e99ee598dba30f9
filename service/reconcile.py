"""The reconciler: make the queue agree with the database again after a fault.

The database is the source of truth; the broker only carries hints ("train run 17"). Two
things can make them disagree, and one pass of ``reconcile`` repairs both:

(a) a worker died or stalled while training: its run stays 'running' but its lease (heartbeat,
    database time) runs out. The run goes back to 'queued' and, for a Celery sweep, is
    published again; after BPLAB_MAX_ATTEMPTS tries it is 'failed' instead (a run that kills
    its process every time must not loop);
(b) the broker lost messages (Redis restarted without persistence), or a worker died after
    Redis delivered it a message and before it claimed the runs (the message then sits in
    Redis' unacked set until the visibility timeout, hours): a Celery sweep's run that has
    been 'queued' longer than a grace period, with no message waiting in the broker's queue
    and none delivered within the grace period, is published again. Publishing twice is
    harmless (only a queued run can be claimed), and the grace period, restarted by every
    publication, keeps a long queue from being flooded.

Workers run it periodically (worker.reconciler); ``bplab sweep recover [ID]`` runs it once.
On PostgreSQL a transaction-level advisory lock lets only one reconciler act at a time (the
others skip their turn); on SQLite the write lock of BEGIN IMMEDIATE does the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from service import reliability
from service.celery_config import queue_name
from service.db import leases
from service.db.session import session_scope


@dataclass
class ReconcileReport:
    """What one pass did. ``broker_error`` says why lost messages could not be looked for."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    republished: list[int] = field(default_factory=list)
    skipped: bool = False  # another reconciler held the lock
    broker_error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.requeued or self.failed or self.republished)

    def summary(self) -> str:
        if self.skipped:
            return "another reconciler is running; nothing done"
        text_ = (
            f"{len(self.requeued)} run(s) with an expired lease re-queued, "
            f"{len(self.failed)} failed after too many attempts, "
            f"{len(self.republished)} queued run(s) published again"
        )
        return text_ + (f" ({self.broker_error})" if self.broker_error else "")


def reconcile(
    url: str | None = None,
    *,
    sweep_id: int | None = None,
    broker_url: str | None = None,
    queue: str | None = None,
    backend: str | None = None,
    lease_s: float | None = None,
    max_attempts: int | None = None,
    grace_s: float | None = None,
) -> ReconcileReport:
    """One pass over sweep ``sweep_id`` (None: every sweep, or every sweep of ``backend``).

    Without ``broker_url`` only (a) happens: expired runs are re-queued in the database (a
    local sweep's are then trained by ``bplab sweep resume``). With it, Celery sweeps' runs
    are published to ``queue`` (default BPLAB_QUEUE), after the commit.
    """
    lease_s = reliability.lease_seconds() if lease_s is None else lease_s
    max_attempts = reliability.max_attempts() if max_attempts is None else max_attempts
    grace_s = reliability.requeue_grace_seconds() if grace_s is None else grace_s
    queue = queue or queue_name()
    report = ReconcileReport()
    with session_scope(url) as session:
        if not leases.try_reconciler_lock(session):
            report.skipped = True
            return report
        report.requeued, report.failed = leases.expire_leases(
            session,
            lease_s=lease_s,
            max_attempts=max_attempts,
            sweep_id=sweep_id,
            backend=backend,
        )
        if broker_url:
            expired = set(leases.celery_runs(session, report.requeued))
            lost = _lost_messages(session, report, broker_url, queue, grace_s, sweep_id)
            lost -= expired
            report.republished = sorted(expired | lost)
            leases.mark_published(session, report.republished)
    if report.republished:
        from service.dispatch import DispatchError, publish_stored

        assert broker_url is not None
        try:
            # Runs whose messages were lost were never trained: they travel on together, one
            # population task per shape. Runs whose worker died while training them travel
            # alone: one of them may be a poison run that kills its process, and in a
            # population it would use up its companions' attempts with its own.
            if lost:
                publish_stored(url, sorted(lost), broker_url, queue=queue, min_groups=1)
            if expired:
                publish_stored(url, sorted(expired), broker_url, queue=queue, alone=True)
        except DispatchError as exc:
            # Still queued in the database, with a fresh grace period: a later pass publishes
            # them once the broker is back (they will not be in its queue).
            report.broker_error = str(exc)
            report.republished = []
    return report


def _lost_messages(
    session: Session,
    report: ReconcileReport,
    broker_url: str,
    queue: str,
    grace_s: float,
    sweep_id: int | None,
) -> set[int]:
    """Queued runs past their grace period with no live message in the broker.

    A delivered message counts for a grace period after its delivery, as a published one does
    after its publication: past it, runs still queued were never claimed, so whoever took the
    message is gone. The candidates are read again after the broker: a run trained and
    acknowledged between the first read and the scan is then seen finished or running, not
    lost (read once, 366 of 5,000 such runs were published again in one test: harmless, as the
    claim refuses them, but wasted messages).
    """
    from service.producer import BrokerNotInspectable, BrokerUnavailable, run_ids_in_broker

    waiting = leases.queued_waiting(session, grace_s=grace_s, sweep_id=sweep_id)
    if not waiting:
        return set()
    try:
        present = run_ids_in_broker(broker_url, queue, unacked_max_age_s=max(grace_s, 0.0))
    except (BrokerUnavailable, BrokerNotInspectable) as exc:
        report.broker_error = str(exc)
        return set()
    lost = set(waiting) - present
    if lost:
        lost &= set(leases.queued_waiting(session, grace_s=grace_s, sweep_id=sweep_id))
    return lost
