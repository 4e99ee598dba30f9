"""Checkpoints of finished runs are deleted where the run ends (issue 19): finish_runs (the
executor's batched finish), finish_run, fail_run and a cancel, in the same transaction; the
checkpoint of a run that is still training, or was handed back, stays."""

from __future__ import annotations

from sqlalchemy import text

from service.db import leases
from service.db import repository as repo
from service.db.session import session_scope
from tests.reliability.helpers import make_sweep


def _checkpointed(url: str, n: int) -> tuple[list[int], dict[int, int]]:
    """n runs, each claimed and checkpointed at epoch 5; their ids and attempts."""
    run_ids = make_sweep(url, n)
    with session_scope(url) as session:
        attempts = repo.claim_runs(session, run_ids, "w")
        for run_id in run_ids:
            repo.save_checkpoint(session, run_id, attempts[run_id], 5, b"state")
    return run_ids, attempts


def _with_checkpoint(url: str) -> set[int]:
    with session_scope(url, readonly=True) as session:
        return set(session.execute(text("SELECT run_id FROM checkpoints")).scalars())


def _summary(status: str) -> dict:
    return {"status": status, "epochs_run": 5, "final_loss": 0.1}


def test_finishing_deletes_the_checkpoints_of_the_finished_runs_only(db_url: str) -> None:
    (a, b, c, d), attempts = _checkpointed(db_url, 4)
    with session_scope(db_url) as session:
        items = [(a, attempts[a], _summary("succeeded")), (b, attempts[b], _summary("diverged"))]
        assert repo.finish_runs(session, items)
        repo.finish_run(session, c, attempts[c], status="succeeded", epochs_run=5)
    assert _with_checkpoint(db_url) == {d}  # d still trains: its state is kept
    with session_scope(db_url) as session:
        repo.fail_run(session, d, attempts[d], "boom")
    assert _with_checkpoint(db_url) == set()


def test_a_stale_finish_deletes_nothing(db_url: str) -> None:
    (a,), attempts = _checkpointed(db_url, 1)
    with session_scope(db_url) as session:
        assert not repo.finish_runs(session, [(a, attempts[a] + 1, _summary("succeeded"))])
    assert _with_checkpoint(db_url) == {a}


def test_handed_back_runs_keep_theirs_until_cancelled(db_url: str) -> None:
    (a, b), attempts = _checkpointed(db_url, 2)
    with session_scope(db_url) as session:
        repo.release_run(session, a, attempts[a])  # back to the queue, resumes from epoch 5
    assert _with_checkpoint(db_url) == {a, b}
    with session_scope(db_url) as session:
        sweep_id = repo.get_run(session, a).sweep_id
        assert leases.cancel_runs(session, sweep_id) == {"queued": 1, "running": 1}
    assert _with_checkpoint(db_url) == set()
