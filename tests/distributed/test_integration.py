"""Issue 6, end to end: `bplab db upgrade`, two real `bplab worker` processes started with the
compose file's own commands, sweeps submitted from the CLI, on PostgreSQL and Redis at 127.0.0.1.

Never eager mode, never an in-thread worker: every worker here is a subprocess with a prefork pool.
"""

from __future__ import annotations

import builtins
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from kombu import Connection, Exchange
from sqlalchemy import text

from service.db import repository as repo
from service.db.session import session_scope
from service.producer import publish, publish_runs, train_runs_messages
from service.results import param_value
from service.spec import load_spec
from service.sweeps import create_sweep_from_spec
from tests.distributed.stack import (
    Stack,
    free_port,
    migrated_stack,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

TERMINAL = ("succeeded", "diverged", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("distributed")
    with migrated_stack(tmp) as s:
        yield s


def write_spec(stack: Stack, **overrides: object) -> Path:
    spec = {
        "name": f"dist-{uuid.uuid4().hex[:6]}",
        "dataset": "xor",
        "method": "grid",
        "seeds": 5,
        "parameters": {
            "learning_rate": [0.5, 1.0],
            "hidden": [2, 3],
            "momentum": 0.9,
            "epochs": 300,
            # 300 is not a multiple of 7: the last epoch is recorded on its own.
            "log_every": 7,
        },
    }
    spec.update(overrides)
    path = stack.tmp / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def counts(stack: Stack, sweep_id: int) -> dict[str, int]:
    with session_scope(stack.database_url, readonly=True) as session:
        return repo.status_counts(session, sweep_id)


def sweep_count(stack: Stack) -> int:
    with session_scope(stack.database_url, readonly=True) as session:
        return session.execute(text("SELECT count(*) FROM sweeps")).scalar_one()


def run_rows(stack: Stack, sweep_id: int) -> list[dict]:
    with session_scope(stack.database_url, readonly=True) as session:
        rows = session.execute(
            text(
                "SELECT id, status, attempt, worker, epochs_run, config, "
                "(SELECT count(*) FROM run_weights w WHERE w.run_id = r.id) AS weights "
                "FROM runs r WHERE sweep_id = :s ORDER BY id"
            ),
            {"s": sweep_id},
        )
        return [dict(r._mapping) for r in rows]


def recorded_epochs(stack: Stack, run_id: int) -> list[int]:
    with session_scope(stack.database_url, readonly=True) as session:
        return list(
            session.execute(
                text("SELECT epoch FROM epoch_metrics WHERE run_id = :r ORDER BY epoch"),
                {"r": run_id},
            ).scalars()
        )


def expected_epochs(epochs_run: int, log_every: int) -> list[int]:
    due = [e for e in range(1, epochs_run + 1) if e % log_every == 0]
    return due if due and due[-1] == epochs_run else [*due, epochs_run]


def assert_trained_once(stack: Stack, row: dict) -> None:
    """Succeeded in one attempt, one row per recorded epoch (none twice), final weights stored."""
    config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
    assert row["status"] == "succeeded", row
    assert row["attempt"] == 1, row
    assert row["weights"] == 1, row
    # The primary key (run_id, epoch) forbids duplicates; the list must also have no gap.
    assert recorded_epochs(stack, row["id"]) == expected_epochs(
        row["epochs_run"], config["log_every"]
    )
    with session_scope(stack.database_url, readonly=True) as session:
        weights = repo.load_weights(session, row["id"])
    sizes = [2, *config["hidden"], 1]
    assert [w.shape for w in weights] == [
        s for i in range(len(sizes) - 1) for s in ((sizes[i], sizes[i + 1]), (sizes[i + 1],))
    ]
    assert all(np.isfinite(w).all() for w in weights)


def create_unpublished_sweep(stack: Stack, seeds: int, epochs: int) -> list[int]:
    """A sweep written straight to the database, with no message published for it."""
    spec = load_spec(
        write_spec(
            stack, seeds=seeds, parameters={"hidden": [2], "epochs": epochs, "log_every": 10}
        )
    )
    with session_scope(stack.database_url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
        return repo.run_ids(session, sweep_id)


def wait_terminal(stack: Stack, run_ids: list[int], timeout: float = 180) -> None:
    def done() -> bool:
        with session_scope(stack.database_url, readonly=True) as session:
            statuses = session.execute(
                text("SELECT status FROM runs WHERE id = ANY(:ids)"), {"ids": run_ids}
            ).scalars()
            return all(s in TERMINAL for s in statuses)

    wait_for(done, timeout, f"runs {run_ids} to finish")


def test_submit_a_sweep_to_two_workers_and_read_the_results(stack: Stack) -> None:
    spec_path = write_spec(stack)
    submitted = stack.bplab("sweep", "submit", str(spec_path))
    assert submitted.returncode == 0, submitted.stderr
    # stdout is the sweep id alone, so that scripts can capture it.
    assert re.fullmatch(r"\d+\n", submitted.stdout), submitted.stdout
    sweep_id = int(submitted.stdout)
    assert "20 run(s) queued" in submitted.stderr

    watched = stack.bplab(
        "sweep",
        "watch",
        str(sweep_id),
        "--interval",
        "0.3",
        "--timeout",
        "240",
        "--format",
        "json",
        timeout=300,
    )
    assert watched.returncode == 0, watched.stderr + stack.worker_logs()[-4000:]
    assert counts(stack, sweep_id)["succeeded"] == 20

    rows = run_rows(stack, sweep_id)
    assert len(rows) == 20
    for row in rows:
        assert_trained_once(stack, row)
    # Both workers took part (each has one pool process here, so one pid each).
    assert len({r["worker"] for r in rows}) == 2, {r["worker"] for r in rows}

    # What watch printed at the end is the results table read back from PostgreSQL.
    summary = json.loads(watched.stdout)
    assert sum(g["seeds"] for g in summary) == 20
    assert sum(g["succeeded"] for g in summary) == 20

    status = stack.bplab("sweep", "status", str(sweep_id), "--format", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == [
        {
            "sweep": sweep_id,
            "total": 20,
            "done": 20,
            "queued": 0,
            "running": 0,
            "succeeded": 20,
            "diverged": 0,
            "failed": 0,
            "cancelled": 0,
            "pruned": 0,
        }
    ]

    # The same results through the read side of the CLI, with the PostgreSQL URL.
    results = stack.bplab("results", str(sweep_id), "--format", "json")
    assert results.returncode == 0, results.stderr
    # watch's rows also name their sweep (issue 18 item 10); otherwise they are the table's
    assert all(g.pop("sweep_id") == sweep_id for g in summary)
    assert json.loads(results.stdout) == summary
    listed = stack.bplab("runs", str(sweep_id), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    runs = {r["id"]: r for r in json.loads(listed.stdout)}
    assert sorted(runs) == [r["id"] for r in rows]
    assert all(r["status"] == "succeeded" for r in runs.values())
    with session_scope(stack.database_url, readonly=True) as session:
        for run in repo.list_runs(session, sweep_id):
            assert runs[run.id]["final_loss"] == pytest.approx(run.final_loss, rel=1e-12)
    for group in summary:  # each configuration's mean final loss, recomputed from its runs
        swept = {k: v for k, v in group.items() if k in runs[rows[0]["id"]]["params"]}
        members = [
            r
            for r in runs.values()
            if all(param_value(r["params"], k) == v for k, v in swept.items())
        ]
        assert len(members) == group["seeds"]
        mean = sum(r["final_loss"] for r in members) / len(members)
        assert group["final_loss_mean"] == pytest.approx(mean, rel=1e-9)


def test_workers_run_with_one_blas_thread_per_process(stack: Stack) -> None:
    for worker in stack.workers:
        pids = [worker.proc.pid, *_children(worker.proc.pid)]
        assert len(pids) == 2, pids  # the main process and its one pool process (concurrency 1)
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            for name in (b"OMP_NUM_THREADS", b"OPENBLAS_NUM_THREADS", b"MKL_NUM_THREADS"):
                assert name + b"=1" in environ, (pid, name)


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def test_the_same_task_delivered_twice_trains_the_run_once(stack: Stack) -> None:
    run_ids = create_unpublished_sweep(stack, seeds=3, epochs=3000)
    # Each run id twice, back to back: the two workers receive the copies at the same time.
    assert (
        publish_runs(
            [r for run_id in run_ids for r in (run_id, run_id)], stack.broker_url, queue=stack.queue
        )
        == 6
    )
    wait_terminal(stack, run_ids)
    # Every message was taken off the queue and handled (nothing left for a later test to see).
    wait_for(lambda: stack.redis().llen(stack.queue) == 0, 30, "the queue to drain")
    rows = {r["id"]: r for r in run_rows(stack, _sweep_of(stack, run_ids[0]))}
    for run_id in run_ids:
        assert_trained_once(stack, rows[run_id])
    logs = stack.worker_logs()
    for run_id in run_ids:
        assert f"run {run_id}: already claimed or finished, nothing to do" in logs


def test_a_group_task_trains_each_of_its_runs_once(stack: Stack) -> None:
    """`bplab.train_runs` (one message, a list of run ids: the shape population tasks use)."""
    run_ids = create_unpublished_sweep(stack, seeds=4, epochs=200)
    groups = [run_ids[:3], run_ids[2:]]  # run_ids[2] in both groups: still trained once
    assert publish(train_runs_messages(groups), stack.broker_url, queue=stack.queue) == 2
    wait_terminal(stack, run_ids, timeout=120)
    rows = {r["id"]: r for r in run_rows(stack, _sweep_of(stack, run_ids[0]))}
    for run_id in run_ids:
        assert_trained_once(stack, rows[run_id])


def test_a_pickled_message_is_refused_and_not_executed(stack: Stack) -> None:
    (run_id,) = create_unpublished_sweep(stack, seeds=1, epochs=100)
    tripwire = stack.tmp / f"unpickled-{uuid.uuid4().hex[:6]}"

    class Tripwire:
        # Unpickling this creates a file: the harm a pickle message could do, made visible.
        def __reduce__(self):  # noqa: ANN204
            return (builtins.open, (str(tripwire), "w"))

    task_id = str(uuid.uuid4())
    body = (
        (),
        {"run_id": run_id},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None, "x": Tripwire()},
    )
    headers = {
        "lang": "py",
        "task": "bplab.train_run",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "()",
        "kwargsrepr": repr({"run_id": run_id}),
        "origin": "test",
    }
    with Connection(stack.broker_url) as conn:
        conn.Producer().publish(
            body,
            exchange=Exchange(stack.queue, type="direct"),
            routing_key=stack.queue,
            serializer="pickle",
            headers=headers,
        )
    wait_for(
        lambda: "Refusing to deserialize untrusted content of type pickle" in stack.worker_logs(),
        60,
        "the refusal in a worker log",
    )
    wait_for(lambda: stack.redis().llen(stack.queue) == 0, 30, "the queue to drain")
    assert not tripwire.exists(), "a worker unpickled the message"
    (row,) = [r for r in run_rows(stack, _sweep_of(stack, run_id)) if r["id"] == run_id]
    assert (row["status"], row["attempt"]) == ("queued", 0)
    assert recorded_epochs(stack, run_id) == []

    # The workers are alive and on this queue: the same task in JSON trains the run.
    publish_runs([run_id], stack.broker_url, queue=stack.queue)
    wait_terminal(stack, [run_id], timeout=60)
    (row,) = [r for r in run_rows(stack, _sweep_of(stack, run_id)) if r["id"] == run_id]
    assert_trained_once(stack, row)
    assert not tripwire.exists()
    assert all(w.proc.poll() is None for w in stack.workers)


def test_submit_with_an_unreachable_broker_writes_nothing(stack: Stack) -> None:
    before = sweep_count(stack)
    port = free_port()
    broker = f"redis://:hunter2@127.0.0.1:{port}/0"
    result = stack.bplab(
        "sweep", "submit", str(write_spec(stack)), env=stack.env(BPLAB_BROKER_URL=broker)
    )
    # a broker that cannot be reached is bad input: one line, exit 2 (issue 18)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"redis://:***@127.0.0.1:{port}/0" in result.stderr
    assert "hunter2" not in result.stderr
    assert "nothing was written" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sweep_count(stack) == before


def test_submit_to_an_unmigrated_database_publishes_nothing(
    stack: Stack, empty_pg_url: str
) -> None:
    received_before = stack.worker_logs().count("] received")
    result = stack.bplab(
        "sweep", "submit", str(write_spec(stack)), env=stack.env(BPLAB_DATABASE_URL=empty_pg_url)
    )
    # checked before anything is written: one line, exit 2 (issue 18)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "bplab db upgrade" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    time.sleep(2)  # time enough for a worker to log a message, had one been published
    assert stack.redis().llen(stack.queue) == 0
    assert stack.worker_logs().count("] received") == received_before


def test_submit_with_a_bad_spec_exits_2_and_writes_nothing(stack: Stack) -> None:
    before = sweep_count(stack)
    bad = write_spec(stack, parameters={"learning_rate": -1.0, "hidden": [2], "epochs": 10})
    result = stack.bplab("sweep", "submit", str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "learning_rate" in result.stderr
    assert sweep_count(stack) == before


def _sweep_of(stack: Stack, run_id: int) -> int:
    with session_scope(stack.database_url, readonly=True) as session:
        return session.execute(
            text("SELECT sweep_id FROM runs WHERE id = :r"), {"r": run_id}
        ).scalar_one()


def test_sweep_run_uses_the_workers_when_a_broker_is_set(stack: Stack) -> None:
    """The same command as on a laptop: with BPLAB_BROKER_URL set, `sweep run` submits, waits
    for the Celery workers and prints the results; nothing is trained in the CLI process."""
    spec_path = write_spec(stack, seeds=2)
    ran = stack.bplab("sweep", "run", str(spec_path), "--format", "json", timeout=300)
    assert ran.returncode == 0, ran.stderr + stack.worker_logs()[-4000:]
    summary = json.loads(ran.stdout)
    assert sum(g["succeeded"] for g in summary) == 8
    sweep_id = int(re.search(r"sweep (\d+): ", ran.stderr).group(1))  # type: ignore[union-attr]
    rows = run_rows(stack, sweep_id)
    assert len(rows) == 8
    for row in rows:
        assert_trained_once(stack, row)
    with session_scope(stack.database_url, readonly=True) as session:
        assert repo.get_sweep(session, sweep_id).backend == "celery"  # type: ignore[union-attr]
