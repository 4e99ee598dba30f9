"""service.db.leases on SQLite and PostgreSQL: expiry, attempts, lost-message candidates,
cancel and retry, and the fencing of each against a stale attempt."""

from __future__ import annotations

import numpy as np
import pytest

from service.db import leases
from service.db import repository as repo
from service.db.repository import StaleAttempt
from service.db.session import session_scope
from tests.reliability.helpers import age, make_sweep, state, sweep_of

ROW = {"loss": 0.5, "accuracy": 0.5, "max_error": 0.9, "val_loss": None, "val_accuracy": None}


def claim(url: str, run_id: int) -> int:
    with session_scope(url) as session:
        attempt = repo.claim_run(session, run_id, "w:1")
    assert attempt is not None
    return attempt


def test_expired_leases_are_requeued_or_failed_after_max_attempts(db_url: str) -> None:
    fresh, stale, exhausted = make_sweep(db_url, 3)
    for run_id in (fresh, stale, exhausted):
        claim(db_url, run_id)
    with session_scope(db_url) as session:  # two more tries of the third run
        for _ in range(2):
            session.execute(
                repo._runs.update()
                .where(repo._runs.c.id == exhausted)
                .values(attempt=repo._runs.c.attempt + 1)
            )
    age(db_url, stale, "heartbeat_at", 30)
    age(db_url, exhausted, "heartbeat_at", 30)
    with session_scope(db_url) as session:
        requeued, failed = leases.expire_leases(session, lease_s=10, max_attempts=3)
    assert (requeued, failed) == ([stale], [exhausted])
    assert state(db_url, fresh)["status"] == "running"
    s = state(db_url, stale)
    assert (s["status"], s["attempt"]) == ("queued", 1) and s["queued_at"] is not None
    s = state(db_url, exhausted)
    assert (s["status"], s["attempt"]) == ("failed", 3)
    assert "gave up after 3 attempt(s)" in s["error"]
    # The next claim of the requeued run is attempt 2; attempt 1's late write is fenced off.
    assert claim(db_url, stale) == 2
    with pytest.raises(StaleAttempt), session_scope(db_url) as session:
        repo.record_epochs(session, stale, 1, [{"epoch": 1, **ROW}])


def test_expiry_is_limited_to_a_sweep_or_backend(db_url: str) -> None:
    (local_run,) = make_sweep(db_url, 1, backend="local")
    (celery_run,) = make_sweep(db_url, 1, backend="celery")
    for run_id in (local_run, celery_run):
        claim(db_url, run_id)
        age(db_url, run_id, "heartbeat_at", 30)
    sweep = sweep_of(db_url, local_run)
    with session_scope(db_url) as session:
        assert leases.expire_leases(session, lease_s=10, max_attempts=3, backend="celery") == (
            [celery_run],
            [],
        )
        assert leases.expire_leases(session, lease_s=10, max_attempts=3, sweep_id=sweep) == (
            [local_run],
            [],
        )


def test_queued_waiting_counts_from_the_last_publication(db_url: str) -> None:
    a, b = make_sweep(db_url, 2, backend="celery")
    (local_run,) = make_sweep(db_url, 1, backend="local")
    with session_scope(db_url) as session:
        assert leases.queued_waiting(session, grace_s=60) == []  # just created
    for run_id in (a, b, local_run):
        age(db_url, run_id, "created_at", 120)
    with session_scope(db_url) as session:
        assert leases.queued_waiting(session, grace_s=60) == [a, b]  # celery sweeps only
        leases.mark_published(session, [a])
    with session_scope(db_url) as session:
        assert leases.queued_waiting(session, grace_s=60) == [b]


def test_cancel_stops_queued_runs_for_good_and_fences_running_ones(db_url: str) -> None:
    queued, running, done = make_sweep(db_url, 3)
    sweep = sweep_of(db_url, queued)
    attempt = claim(db_url, running)
    claim(db_url, done)
    with session_scope(db_url) as session:
        repo.finish_run(session, done, 1, status="succeeded")
    with session_scope(db_url) as session:
        assert leases.cancel_runs(session, sweep) == {"queued": 1, "running": 1}
    assert [state(db_url, r)["status"] for r in (queued, running, done)] == [
        "cancelled",
        "cancelled",
        "succeeded",
    ]
    with session_scope(db_url) as session:
        assert repo.claim_run(session, queued, "w:2") is None  # a late message starts nothing
    with pytest.raises(StaleAttempt), session_scope(db_url) as session:
        repo.heartbeat(session, running, attempt)
    # The cancelled attempt may still add its last rows and summary, fenced on 'cancelled'.
    with session_scope(db_url) as session:
        leases.record_cancelled(
            session, running, attempt, [{"epoch": 7, **ROW}], epochs_run=7, final_loss=0.5
        )
    s = state(db_url, running)
    assert (s["status"], s["epochs_run"], s["rows"]) == ("cancelled", 7, 1)
    with pytest.raises(StaleAttempt), session_scope(db_url) as session:
        leases.record_cancelled(session, running, attempt + 1, [], epochs_run=8)


def test_retry_starts_afresh_and_resets_the_attempt_budget(db_url: str) -> None:
    failed, cancelled, succeeded = make_sweep(db_url, 3)
    sweep = sweep_of(db_url, failed)
    for run_id in (failed, cancelled, succeeded):
        attempt = claim(db_url, run_id)
        with session_scope(db_url) as session:
            repo.record_epochs(session, run_id, attempt, [{"epoch": 7, **ROW}])
            repo.save_checkpoint(session, run_id, attempt, 7, b"state")
    with session_scope(db_url) as session:
        repo.fail_run(session, failed, 1, "boom")
        repo.save_weights(session, succeeded, 1, [np.zeros(2)])
        repo.finish_run(session, succeeded, 1, status="succeeded")
        leases.cancel_runs(session, sweep)
    with session_scope(db_url) as session:
        assert leases.retry_runs(session, sweep, ["failed"]) == [failed]
    s = state(db_url, failed)
    assert (s["status"], s["attempt"], s["retry_base"], s["error"]) == ("queued", 1, 1, None)
    assert (s["rows"], s["checkpoints"], s["weights"]) == (0, 0, 0)
    assert state(db_url, cancelled)["status"] == "cancelled"  # not asked for
    assert state(db_url, succeeded)["rows"] == 1
    with pytest.raises(ValueError, match="cannot retry 'succeeded'"), session_scope(db_url) as s_:
        leases.retry_runs(s_, sweep, ["succeeded"])
    # The old attempt stays fenced off after the retry and after the next claim.
    assert claim(db_url, failed) == 2
    with pytest.raises(StaleAttempt), session_scope(db_url) as session:
        repo.record_epochs(session, failed, 1, [{"epoch": 14, **ROW}])
    # Tries since the retry: 1, below a maximum of 2, so an expired lease re-queues it.
    age(db_url, failed, "heartbeat_at", 30)
    with session_scope(db_url) as session:
        assert leases.expire_leases(session, lease_s=10, max_attempts=2) == ([failed], [])


def test_an_exhausted_run_whose_row_frees_up_mid_pass_is_not_requeued(db_url: str) -> None:
    """expire_leases fails exhausted runs, then re-queues the other expired ones, skipping
    rows locked by other transactions (SKIP LOCKED, PostgreSQL). Each statement looks at the
    locks afresh: a row locked during the first and free by the second must still not be
    re-queued, or a poison run gets one attempt too many. It stays running for the next pass."""
    from sqlalchemy import create_engine, event, text

    from service.db.session import get_engine

    (run_id,) = make_sweep(db_url, 1)
    claim(db_url, run_id)
    with session_scope(db_url) as session:  # attempts 2 and 3 died too
        session.execute(repo._runs.update().where(repo._runs.c.id == run_id).values(attempt=3))
    age(db_url, run_id, "heartbeat_at", 30)
    if db_url.startswith("sqlite"):  # one writer at a time: no row is locked mid-pass
        with session_scope(db_url) as session:
            assert leases.expire_leases(session, lease_s=10, max_attempts=3) == ([], [run_id])
        return
    locker = create_engine(db_url).connect()
    held = locker.begin()
    locker.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": run_id})
    updates: list[str] = []

    def free_the_row_before_the_second_update(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE RUNS"):
            updates.append(statement)
            if len(updates) == 2:
                held.commit()

    engine = get_engine(db_url)
    event.listen(engine, "before_cursor_execute", free_the_row_before_the_second_update)
    try:
        with session_scope(db_url) as session:
            assert leases.expire_leases(session, lease_s=10, max_attempts=3) == ([], [])
    finally:
        event.remove(engine, "before_cursor_execute", free_the_row_before_the_second_update)
        locker.close()
    assert len(updates) == 2
    s = state(db_url, run_id)
    assert (s["status"], s["attempt"]) == ("running", 3)
    with session_scope(db_url) as session:  # the next pass, the row free, fails it
        assert leases.expire_leases(session, lease_s=10, max_attempts=3) == ([], [run_id])
    assert state(db_url, run_id)["status"] == "failed"
