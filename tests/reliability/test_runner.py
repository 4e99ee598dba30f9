"""The executor (service.execution) on single runs under faults, in-process: resume
bit-identical, cancel, time-limit release, database outages retried (through a real TCP proxy
that cuts PostgreSQL off)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.db import leases
from service.db import repository as repo
from service.db.models import Checkpoint
from service.db.session import dispose_engines, session_scope
from service.execution import execute_run
from service.execution.group import Population
from tests.faults.harness import due_epochs, reference
from tests.faults.servers import TcpProxy
from tests.reliability.helpers import make_sweep, state, sweep_of


def assert_clean(url: str, run_id: int) -> None:
    """Rows (one per recorded epoch) and weights equal to an uninterrupted run's."""
    with session_scope(url) as session:
        run = repo.get_run(session, run_id)
        rows = repo.epoch_rows(session, run_id)
        weights = repo.load_weights(session, run_id)
        config, seed, last = dict(run.config), run.seed, run.epochs_run
    clean_weights, metrics = reference(json.dumps(config, sort_keys=True), seed)
    assert [r.epoch for r in rows] == due_epochs(last, config["log_every"])
    for row in rows:
        ref = metrics[row.epoch]
        assert (row.loss, row.accuracy, row.max_error) == (
            ref["loss"],
            ref["accuracy"],
            ref["max_error"],
        )
    for mine, clean in zip(weights, clean_weights, strict=True):
        np.testing.assert_array_equal(mine, clean)


def stop_after(n: int):  # noqa: ANN201 - a should_stop callback
    """True from the n-th epoch this attempt trains (the n-th call) on."""
    calls = iter(range(1, n + 1))
    return lambda: next(calls, n) >= n


def test_a_run_stopped_twice_resumes_bit_identical(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    (run_id,) = make_sweep(db_url, 1, epochs=403)
    # Stopped at epochs 123 and then 123 + 150: neither a checkpoint nor a recorded epoch.
    assert execute_run(run_id, url=db_url, should_stop=stop_after(123)) == "queued"
    with session_scope(db_url) as session:
        assert repo.load_checkpoint(session, run_id)[0] == 123
    assert execute_run(run_id, url=db_url, should_stop=stop_after(150)) == "queued"
    assert execute_run(run_id, url=db_url) == "succeeded"
    s = state(db_url, run_id)
    assert (s["attempt"], s["epochs_run"], s["weights"]) == (3, 403, 1)
    assert_clean(db_url, run_id)


@pytest.mark.parametrize("seconds,periodic", [("3600", []), ("0", [200, 400])])
def test_periodic_checkpoints_wait_for_enough_training_time(
    db_url: str, monkeypatch, seconds: str, periodic: list[int]
) -> None:
    """A run that trains in a fraction of a second takes no periodic checkpoint by default
    (a crash would lose almost nothing); with BPLAB_CHECKPOINT_SECONDS=0 it takes one every
    BPLAB_CHECKPOINT_EVERY epochs. Stopped at 450: the handed-back state is always saved,
    and the periodic one is what is left of it after the rest of the run is thrown away."""
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "200")
    monkeypatch.setenv("BPLAB_CHECKPOINT_SECONDS", seconds)
    (run_id,) = make_sweep(db_url, 1, epochs=1000)
    saved: list[int] = []
    save = repo.save_checkpoint

    def spy(session, rid, attempt, epoch, data):  # noqa: ANN001, ANN202
        saved.append(epoch)
        return save(session, rid, attempt, epoch, data)

    def spy_many(session, model, rows):  # noqa: ANN001, ANN202 - the executor's batch write
        if model is Checkpoint:
            saved.extend(r["epoch"] for r in rows if r)
        return upsert(session, model, rows)

    upsert = repo.upsert_by_run
    monkeypatch.setattr(repo, "save_checkpoint", spy)
    monkeypatch.setattr(repo, "upsert_by_run", spy_many)
    assert execute_run(run_id, url=db_url, should_stop=stop_after(450)) == "queued"
    assert saved == [*periodic, 450]  # the periodic ones, then the handed-back state


def test_a_crashed_attempt_is_resumed_from_its_last_checkpoint(db_url: str, monkeypatch) -> None:
    """A worker that died after its checkpoint at 200 (and wrote rows up to 260): the next
    attempt starts at 201, re-records 201-260 identically, and ends like a clean run."""
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "100")
    (run_id,) = make_sweep(db_url, 1, epochs=403)
    assert execute_run(run_id, url=db_url, should_stop=stop_after(260)) == "queued"
    with session_scope(db_url) as session:  # forget the exact-state checkpoint of the stop
        session.execute(Checkpoint.__table__.delete())
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "200")
    assert execute_run(run_id, url=db_url, should_stop=stop_after(200)) == "queued"
    with session_scope(db_url) as session:
        assert repo.load_checkpoint(session, run_id)[0] == 200
    assert execute_run(run_id, url=db_url) == "succeeded"
    assert_clean(db_url, run_id)


def test_cancel_stops_a_training_run_and_keeps_its_curve(db_url: str) -> None:
    (run_id,) = make_sweep(db_url, 1, epochs=5_000_000, log_every=1)
    sweep = sweep_of(db_url, run_id)
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(execute_run(run_id, url=db_url)))
    thread.start()
    deadline = time.monotonic() + 30
    while state(db_url, run_id)["rows"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with session_scope(db_url) as session:
        assert leases.cancel_runs(session, sweep)["running"] == 1
    cancelled = time.monotonic()
    thread.join(timeout=30)
    assert result == ["cancelled"]
    assert time.monotonic() - cancelled < 3.0
    s = state(db_url, run_id)
    assert s["status"] == "cancelled" and 0 < s["epochs_run"] < 5_000_000
    assert s["rows"] == s["epochs_run"] and s["weights"] == 0  # the whole curve, every epoch


class FakeTimeLimit(Exception):
    """Stands for Celery's SoftTimeLimitExceeded, raised in the middle of training."""


def test_a_time_limit_releases_the_run_until_its_attempts_are_used(
    db_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "1000")
    monkeypatch.setenv("BPLAB_MAX_ATTEMPTS", "2")
    (run_id,) = make_sweep(db_url, 1, epochs=10_000)
    # Raised from the epoch callback at a fixed epoch, not from a timer signal: a signal can land
    # inside a finaliser, where Python ignores the exception, and the test would train on.
    on_epochs = Population._on_epochs

    def time_limit_at_2500(self: Population, members, epochs, metrics):  # noqa: ANN001, ANN202
        stop = on_epochs(self, members, epochs, metrics)
        if epochs[0] == 2500:
            raise FakeTimeLimit("soft time limit")
        return stop

    monkeypatch.setattr(Population, "_on_epochs", time_limit_at_2500)
    assert execute_run(run_id, url=db_url, release_on=(FakeTimeLimit,)) == "queued"
    s = state(db_url, run_id)
    assert (s["status"], s["attempt"], s["checkpoints"]) == ("queued", 1, 1)
    assert execute_run(run_id, url=db_url, release_on=(FakeTimeLimit,)) == "failed"
    s = state(db_url, run_id)
    assert s["status"] == "failed" and "gave up after 2 attempt(s)" in s["error"]


@pytest.fixture
def proxied_pg(db_url: str):  # noqa: ANN201
    assert db_url.startswith("postgresql"), "a network cut to the database needs PostgreSQL"
    url = make_url(db_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield proxy, proxied
    finally:
        dispose_engines(proxied)
        proxy.close()


def cut_at_epoch(proxy: TcpProxy, epoch: int, restore_after: float | None):  # noqa: ANN201
    """A should_stop callback that cuts PostgreSQL off at the given epoch (and restores it
    ``restore_after`` seconds later, if given); it never asks the run to stop."""
    calls = iter(range(1, 10**9))

    def should_stop() -> bool:
        if next(calls) == epoch:
            proxy.cut()
            if restore_after is not None:
                threading.Timer(restore_after, proxy.restore).start()
        return False

    return should_stop


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_recording_rides_out_a_short_database_outage(proxied_pg, db_url: str, monkeypatch) -> None:
    proxy, proxied = proxied_pg
    monkeypatch.setenv("BPLAB_DB_RETRY_SECONDS", "20")
    (run_id,) = make_sweep(db_url, 1, epochs=3003, log_every=1)
    started = time.monotonic()
    # cut mid-training for 2 s: the next write (a heartbeat flush or the final one) is
    # retried until the line is back, and nothing is lost or doubled
    status = execute_run(run_id, url=proxied, should_stop=cut_at_epoch(proxy, 500, 2.0))
    assert status == "succeeded"
    assert time.monotonic() - started >= 1.5
    assert state(db_url, run_id)["rows"] == 3003
    assert_clean(db_url, run_id)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_long_outage_gives_up_after_the_retry_window(proxied_pg, db_url, monkeypatch) -> None:
    proxy, proxied = proxied_pg
    monkeypatch.setenv("BPLAB_DB_RETRY_SECONDS", "1.5")
    (run_id,) = make_sweep(db_url, 1, epochs=3003, log_every=1)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        execute_run(run_id, url=proxied, should_stop=cut_at_epoch(proxy, 500, None))
    assert 1.0 <= time.monotonic() - started < 10
    assert state(db_url, run_id)["status"] == "running"  # left to the reconciler
