"""service.reconcile.reconcile against real PostgreSQL/SQLite and a real Redis queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from service.db import repository as repo
from service.db.session import session_scope
from service.producer import publish, publish_runs, run_ids_in_broker, train_runs_messages
from service.reconcile import reconcile
from tests.distributed.stack import free_port
from tests.reliability.helpers import age, make_sweep, state

REDIS_DB = 12  # shared with tests/faults; every key here has this test's unique queue name
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"bplab_reconcile_{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(BROKER)
    keys = list(client.scan_iter(match=f"*{name}*"))
    if keys:
        client.delete(*keys)
    client.close()


def expire(url: str, run_id: int) -> None:
    with session_scope(url) as session:
        assert repo.claim_run(session, run_id, "w:1") is not None
    age(url, run_id, "heartbeat_at", 120)


def test_a_local_sweep_gets_its_expired_runs_back_without_a_broker(db_url: str) -> None:
    a, b = make_sweep(db_url, 2)
    expire(db_url, a)
    report = reconcile(db_url, lease_s=10, max_attempts=3)
    assert (report.requeued, report.failed, report.republished) == ([a], [], [])
    assert state(db_url, a)["status"] == "queued" and state(db_url, b)["status"] == "queued"
    assert "1 run(s) with an expired lease re-queued" in report.summary()


def test_lost_messages_are_published_again_once(db_url: str, queue: str) -> None:
    kept, lost, also_lost, grouped, expired = make_sweep(db_url, 5, backend="celery")
    for run_id in (kept, lost, also_lost, grouped):
        age(db_url, run_id, "created_at", 600)
    publish_runs([kept], BROKER, queue=queue)
    publish(train_runs_messages([[grouped]]), BROKER, queue=queue)
    expire(db_url, expired)
    assert run_ids_in_broker(BROKER, queue) == {kept, grouped}

    report = reconcile(db_url, broker_url=BROKER, queue=queue, lease_s=10, grace_s=60)
    # The expired run is published at once; queued runs only when their message is missing.
    assert report.requeued == [expired]
    assert report.republished == [lost, also_lost, expired]
    assert run_ids_in_broker(BROKER, queue) == {kept, grouped, lost, also_lost, expired}
    # kept and grouped as they were; the two lost runs re-published as one population task
    # (runs lost together travel on together), the expired one alone (its worker died while
    # training it: it may be a poison run)
    assert redis.Redis.from_url(BROKER).llen(queue) == 4

    # Their grace period restarted: a second pass right away publishes nothing more.
    again = reconcile(db_url, broker_url=BROKER, queue=queue, lease_s=10, grace_s=60)
    assert again.republished == [] and not again.changed


def test_an_unreachable_broker_still_requeues_and_says_why(db_url: str, queue: str) -> None:
    (run_id,) = make_sweep(db_url, 1, backend="celery")
    expire(db_url, run_id)
    broker = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    report = reconcile(db_url, broker_url=broker, queue=queue, lease_s=10, grace_s=0)
    assert report.requeued == [run_id] and report.republished == []
    assert report.broker_error and "s3cret" not in report.broker_error
    assert ":***@" in report.broker_error
    assert state(db_url, run_id)["status"] == "queued"


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_only_one_reconciler_acts_at_a_time(db_url: str) -> None:
    from service.db.leases import _RECONCILER_LOCK_KEY as _PG_LOCK_KEY

    (run_id,) = make_sweep(db_url, 1)
    expire(db_url, run_id)
    other = create_engine(db_url, poolclass=NullPool)
    try:
        with other.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            report = reconcile(db_url, lease_s=10)
            assert report.skipped and not report.changed
        assert reconcile(db_url, lease_s=10).requeued == [run_id]
    finally:
        other.dispose()
