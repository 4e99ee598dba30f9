"""The repository's run lifecycle against real SQLite and PostgreSQL (every test runs on both):
claiming, fencing stale attempts, heartbeats, finishing, failing, releasing, requeueing."""

from __future__ import annotations

import math
import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.session import get_engine, session_scope


def test_claim_twice_second_gets_none(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    assert repo.claim_run(session, run_id, "w1") == 1
    session.commit()
    assert repo.claim_run(session, run_id, "w2") is None
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker) == ("running", 1, "w1")
    assert run.started_at is not None and run.heartbeat_at is not None


def test_concurrent_claims_one_wins(db_url, session, make_sweep):
    """Two sessions claim the same run at once; the second waits for the first's commit."""
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    results: dict[str, int | None] = {}
    with Session(bind=get_engine(db_url)) as first:
        results["first"] = repo.claim_run(first, run_id, "w1")  # holds the lock, uncommitted

        def second() -> None:
            with session_scope(db_url) as s:
                results["second"] = repo.claim_run(s, run_id, "w2")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert t.is_alive(), "the second claim should wait for the first transaction"
        first.commit()
        t.join(timeout=30)
    assert results == {"first": 1, "second": None}


def test_stale_attempt_writes_are_rejected_and_write_nothing(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=1)
    run_id = repo.run_ids(session, sweep_id)[0]
    old = repo.claim_run(session, run_id, "slow")
    repo.record_epochs(session, run_id, old, [{"epoch": 1, "loss": 0.9}])
    session.commit()
    assert repo.requeue_runs(session, sweep_id) == 1  # its lease was declared lost
    new = repo.claim_run(session, run_id, "fresh")
    session.commit()
    assert new == old + 1

    late_rows = [{"epoch": 2, "loss": 0.8}, {"epoch": 3, "loss": 0.7}]
    for write in (
        lambda: repo.record_epochs(session, run_id, old, late_rows),
        lambda: repo.heartbeat(session, run_id, old),
        lambda: repo.save_weights(session, run_id, old, []),
        lambda: repo.save_checkpoint(session, run_id, old, 3, b"state"),
        lambda: repo.finish_run(session, run_id, old, status="succeeded", final_loss=0.7),
        lambda: repo.fail_run(session, run_id, old, "late"),
    ):
        with pytest.raises(repo.StaleAttempt):
            write()
        session.commit()  # whatever got through would now be durable

    assert [e.epoch for e in repo.epoch_rows(session, run_id)] == [1]
    assert repo.load_checkpoint(session, run_id) is None
    with pytest.raises(repo.NotFound):
        repo.load_weights(session, run_id)
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker, run.final_loss) == ("running", new, "fresh", None)

    repo.record_epochs(session, run_id, new, late_rows)  # the current attempt still writes
    repo.finish_run(session, run_id, new, status="succeeded", epochs_run=3, final_loss=0.7)
    session.commit()
    # A finished run is no longer 'running': even its own attempt cannot write any more.
    with pytest.raises(repo.StaleAttempt):
        repo.heartbeat(session, run_id, new)


def test_finish_and_fail(db_url, session, make_sweep):
    a, b = repo.run_ids(session, make_sweep(seeds=2))
    att = repo.claim_run(session, a, "w")
    repo.finish_run(
        session,
        a,
        att,
        status="diverged",
        epochs_run=12,
        final_loss=float("inf"),
        best_loss=0.4,
        accuracy=0.5,
        val_loss=None,
        solved_epoch=None,
        wall_time_s=0.25,
    )
    att_b = repo.claim_run(session, b, "w")
    repo.fail_run(session, b, att_b, "Traceback: boom")
    session.commit()
    ra, rb = repo.get_run(session, a), repo.get_run(session, b)
    assert (ra.status, ra.epochs_run, ra.final_loss, ra.best_loss) == (
        "diverged",
        12,
        math.inf,
        0.4,
    )
    assert ra.finished_at >= ra.started_at
    assert (rb.status, rb.error) == ("failed", "Traceback: boom")
    with pytest.raises(ValueError, match="finish status"):
        repo.finish_run(session, a, att, status="running")


def test_heartbeat_uses_database_time(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    attempt = repo.claim_run(session, run_id, "w")
    session.commit()
    first = repo.get_run(session, run_id).heartbeat_at
    time.sleep(0.05)
    repo.heartbeat(session, run_id, attempt)
    session.commit()
    session.expire_all()
    later = repo.get_run(session, run_id).heartbeat_at
    db_time = session.scalar(select(func.now()))
    assert first.tzinfo is not None and later > first
    if session.get_bind().dialect.name == "postgresql":
        assert abs((db_time - later).total_seconds()) < 60


def test_requeue_puts_running_back_and_keeps_attempt(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=3)
    r1, r2, r3 = repo.run_ids(session, sweep_id)
    a1 = repo.claim_run(session, r1, "dead")
    repo.claim_run(session, r2, "dead")
    a3 = repo.claim_run(session, r3, "w")
    repo.finish_run(session, r3, a3, status="failed", error="x")
    repo.record_epochs(session, r1, a1, [{"epoch": 1, "loss": 1.0}])
    session.commit()
    assert repo.requeue_runs(session, sweep_id) == 2
    assert repo.requeue_runs(session, sweep_id, ["failed"]) == 1
    session.commit()
    runs = repo.list_runs(session, sweep_id)
    assert [(r.status, r.attempt, r.worker, r.error) for r in runs] == [
        ("queued", 1, None, None),
        ("queued", 1, None, None),
        ("queued", 1, None, None),
    ]
    assert len(repo.epoch_rows(session, r1)) == 1  # kept for the resumed attempt
    assert repo.claim_run(session, r1, "new") == 2


def test_release_run_hands_a_stopped_run_back(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    attempt = repo.claim_run(session, run_id, "w")
    repo.save_checkpoint(session, run_id, attempt, 5, b"s5")
    repo.release_run(session, run_id, attempt)
    session.commit()
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker, run.heartbeat_at) == ("queued", 1, None, None)
    assert repo.load_checkpoint(session, run_id) == (5, b"s5")
    with pytest.raises(repo.StaleAttempt):
        repo.release_run(session, run_id, attempt)  # no longer running
    assert repo.claim_run(session, run_id, "w2") == 2


def test_requeue_stale_runs_uses_the_lease(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=2)
    other = make_sweep(seeds=1)
    r1, r2 = repo.run_ids(session, sweep_id)
    (r3,) = repo.run_ids(session, other)
    for run_id in (r1, r2, r3):
        repo.claim_run(session, run_id, "w")
    session.commit()
    assert repo.requeue_stale_runs(session, sweep_id, older_than_s=3600) == 0  # fresh leases
    time.sleep(1.1)
    attempt2 = repo.get_run(session, r2).attempt
    repo.heartbeat(session, r2, attempt2)  # r2's worker is alive
    session.commit()
    assert repo.requeue_stale_runs(session, sweep_id, older_than_s=1.0) == 1
    session.commit()
    assert [r.status for r in repo.list_runs(session, sweep_id)] == ["queued", "running"]
    assert repo.get_run(session, r3).status == "running"  # another sweep: untouched
    assert repo.requeue_stale_runs(session, None, older_than_s=0) == 2
    session.commit()
    assert repo.status_counts(session, other)["queued"] == 1
