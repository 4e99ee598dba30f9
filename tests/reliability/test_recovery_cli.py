"""`bplab sweep cancel | retry | recover` through the real CLI (CliRunner), on local sweeps."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result
from sqlalchemy import text

from service.cli import cli
from service.db import repository as repo
from service.db.session import session_scope
from tests.distributed.stack import free_port
from tests.reliability.helpers import age, make_sweep, state, sweep_of


def bplab(url: str, *args: str, expect: int = 0, broker: str = "") -> Result:
    env = {"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": broker}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_cancel_then_retry_a_local_sweep(db_url: str) -> None:
    run_ids = make_sweep(db_url, 3)
    sweep = sweep_of(db_url, run_ids[0])
    out = bplab(db_url, "sweep", "cancel", str(sweep))
    assert f"sweep {sweep}: cancelled 3 queued and 0 running run(s)" in out.stderr
    assert {state(db_url, r)["status"] for r in run_ids} == {"cancelled"}
    out = bplab(db_url, "sweep", "retry", str(sweep), "--cancelled", "-w", "1", "--format", "json")
    assert "3 cancelled run(s) re-queued from epoch 0" in out.stderr
    assert sum(g["succeeded"] for g in json.loads(out.stdout)) == 3
    assert all(state(db_url, r)["weights"] == 1 for r in run_ids)
    # Nothing left to retry: a no-op, not an error.
    out = bplab(db_url, "sweep", "retry", str(sweep))
    assert "0 failed/diverged/cancelled run(s) re-queued" in out.stderr


def test_recover_then_resume_a_local_sweep_whose_process_died(db_url: str) -> None:
    dead, queued = make_sweep(db_url, 2)
    sweep = sweep_of(db_url, dead)
    with session_scope(db_url) as session:
        assert repo.claim_run(session, dead, "gone:1") == 1
    age(db_url, dead, "heartbeat_at", 3600)
    out = bplab(db_url, "sweep", "recover", str(sweep), "--format", "json")
    assert json.loads(out.stdout)[0]["requeued_ids"] == str(dead)
    assert "1 run(s) with an expired lease re-queued" in out.stderr
    bplab(db_url, "sweep", "resume", str(sweep), "-w", "1")
    assert [state(db_url, r)["status"] for r in (dead, queued)] == ["succeeded", "succeeded"]
    assert state(db_url, dead)["attempt"] == 2


def test_retry_of_a_celery_sweep_needs_the_broker(db_url: str) -> None:
    (run_id,) = make_sweep(db_url, 1, backend="celery")
    out = bplab(db_url, "sweep", "retry", str(sweep_of(db_url, run_id)), expect=1)
    assert "set BPLAB_BROKER_URL" in out.output


def test_recover_masks_the_broker_password(db_url: str) -> None:
    (run_id,) = make_sweep(db_url, 1, backend="celery")
    age(db_url, run_id, "created_at", 3600)
    broker = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    out = bplab(db_url, "sweep", "recover", broker=broker)
    assert "hunter2" not in out.output and ":***@" in out.stderr


def test_unknown_sweeps_are_a_clear_error(db_url: str) -> None:
    bplab(db_url, "db", "upgrade")  # a database with no sweep (readers create none)
    for command in ("cancel", "retry", "recover"):
        out = bplab(db_url, "sweep", command, "999", expect=2)  # NotFound: a usage error
        assert "sweep 999 does not exist" in out.output


def test_retried_runs_of_one_shape_travel_as_populations(db_url: str) -> None:
    import uuid

    import redis

    from service.producer import run_ids_in_broker

    run_ids = make_sweep(db_url, 24, backend="celery")
    sweep = sweep_of(db_url, run_ids[0])
    with session_scope(db_url) as session:
        session.execute(text("UPDATE runs SET status = 'failed', error = 'boom'"))
    queue = f"bplab_retry_{uuid.uuid4().hex[:10]}"
    broker = "redis://127.0.0.1:6379/12"
    env = {"BPLAB_DATABASE_URL": db_url, "BPLAB_BROKER_URL": broker, "BPLAB_QUEUE": queue}
    result = CliRunner().invoke(cli, ["sweep", "retry", str(sweep)], env=env)
    client = redis.Redis.from_url(broker)
    try:
        assert result.exit_code == 0, result.output
        messages = [json.loads(m) for m in client.lrange(queue, 0, -1)]
        assert run_ids_in_broker(broker, queue) == set(run_ids)
    finally:
        client.delete(queue)
        client.close()
    # 24 runs of one shape: 8 population tasks of 3 (at least 8 per shape, as at submission),
    # where the retry used to publish 24 single-run tasks.
    assert [m["headers"]["task"] for m in messages] == ["bplab.train_runs"] * 8
