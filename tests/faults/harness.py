"""The fault suite's harness: real `bplab worker` processes on 127.0.0.1, faults injected by pid.

Built on tests/distributed (its Stack, database and process helpers). Only processes started
here are signalled, always by their pid (or the process group of a worker started here in its
own session). Nothing is mocked: the workers, Redis and PostgreSQL are real; the one fake is the
TCP proxy that stands for a network cut between the workers and PostgreSQL (it and the Redis
server the restart test kills are in tests/faults/servers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import redis
import yaml
from sqlalchemy import text

from engine import TrainConfig, train
from service.datasets import training_data
from service.db import migrate
from service.db import repository as repo
from service.db.session import make_engine, session_scope
from service.dispatch import publish_groups
from service.grouping import group_run_ids
from service.networks import network_from_config
from service.producer import publish_runs
from service.spec import load_spec
from service.sweeps import create_sweep_from_spec
from tests.distributed.bplab_cli import BPLAB
from tests.distributed.stack import (
    REDIS_HOST,
    REDIS_PORT,
    Stack,
    Worker,
    create_database,
    free_port,
    wait_for,
)

TERMINAL = ("succeeded", "diverged", "failed", "cancelled")
FAULT_REDIS_DB = 12  # tests/distributed has 11

# Short leases and frequent passes, so that each fault is noticed and repaired in seconds.
FAULT_ENV = {
    "BPLAB_LEASE_SECONDS": "3",
    "BPLAB_RECONCILE_SECONDS": "0.5",
    "BPLAB_REQUEUE_GRACE_SECONDS": "3",
    "BPLAB_MAX_ATTEMPTS": "3",
    "BPLAB_DB_RETRY_SECONDS": "40",
    "BPLAB_CHECKPOINT_EVERY": "4000",
}


def say(message: str) -> None:
    """What a test injected or checked: shown with `pytest -s` (and in the log on failure)."""
    print(f"[faults] {message}", flush=True)


@dataclass
class FaultStack(Stack):
    redis_port: int = REDIS_PORT
    redis_db: int = FAULT_REDIS_DB
    # The database URL the workers get (a proxy's, in the outage test); the test reads direct.
    worker_database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def broker_url(self) -> str:
        return f"redis://{REDIS_HOST}:{self.redis_port}/{self.redis_db}"

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**FAULT_ENV)
        if self.worker_database_url:
            env["BPLAB_DATABASE_URL"] = self.worker_database_url
        env.update(self.extra_env)
        env.update(extra)
        return env

    def redis(self) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=self.redis_port, db=self.redis_db)

    def start_bplab_worker(self) -> Worker:
        worker = self.start_worker([*BPLAB, "worker", "--loglevel", "INFO"])
        self.wait_ready(worker)
        return worker


def new_stack(tmp: Path) -> FaultStack:
    url = create_database()
    engine = make_engine(url)
    try:
        migrate.upgrade_engine(engine)
    finally:
        engine.dispose()
    return FaultStack(tmp=tmp, database_url=url)


# --- the workload ------------------------------------------------------------------------


def make_sweep(
    stack: FaultStack,
    *,
    seeds: int,
    epochs: int | tuple[int, ...],
    learning_rates: tuple[float, ...] = (0.5,),
    log_every: int = 7,
    publish: bool = True,
    population: int | None = None,
) -> tuple[int, list[int]]:
    """A Celery sweep of XOR runs (epochs not a multiple of log_every: the last is its own row).

    ``epochs``: one value, or several to grid over (runs of one population that end at
    different epochs). ``population``: publish the runs as ``bplab.train_runs`` tasks of at
    most this many same-shape runs, cut by the code `bplab sweep submit` uses
    (service.grouping), instead of one ``bplab.train_run`` per run.
    """
    spec = {
        "name": f"faults-{uuid.uuid4().hex[:6]}",
        "dataset": "xor",
        "method": "grid",
        "seeds": seeds,
        "parameters": {
            "learning_rate": list(learning_rates),
            "hidden": [2],
            "momentum": 0.9,
            "epochs": list(epochs) if isinstance(epochs, tuple) else epochs,
            "log_every": log_every,
        },
    }
    path = stack.tmp / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    with session_scope(stack.database_url) as session:
        sweep_id = create_sweep_from_spec(session, load_spec(path), backend="celery")
        run_ids = repo.run_ids(session, sweep_id)
        groups = None if population is None else group_run_ids(session, run_ids, population)
    if publish and groups is not None:
        assert any(len(g) > 1 for g in groups), f"no population among {groups}"
        publish_groups(groups, stack.broker_url, queue=stack.queue)
    elif publish:
        publish_runs(run_ids, stack.broker_url, queue=stack.queue)
    return sweep_id, run_ids


@cache
def reference(config_json: str, seed: int) -> tuple[list[np.ndarray], dict[int, dict[str, Any]]]:
    """Final weights and every epoch's metrics of a clean, uninterrupted run, in this process."""
    config = json.loads(config_json)
    X, Y, validation = training_data(config, seed)
    rng = np.random.default_rng(seed)
    net = network_from_config(config, X.shape[1], Y.shape[1], rng)
    metrics: dict[int, dict[str, Any]] = {}
    train(
        net,
        X,
        Y,
        TrainConfig.from_dict(config),
        rng=rng,
        validation=validation,
        on_epoch=lambda epoch, m: metrics.__setitem__(epoch, dict(m)),
    )
    return [p.copy() for p in net.params], metrics


def due_epochs(last: int, log_every: int) -> list[int]:
    due = [e for e in range(1, last + 1) if e % log_every == 0]
    return due if due and due[-1] == last else [*due, last]


# --- reading the database ----------------------------------------------------------------


def runs_of(stack: FaultStack, sweep_id: int) -> list[dict[str, Any]]:
    with session_scope(stack.database_url, readonly=True) as session:
        rows = session.execute(
            text(
                "SELECT id, status, attempt, worker, seed, config, epochs_run, error, "
                "(SELECT count(*) FROM run_weights w WHERE w.run_id = r.id) AS weights "
                "FROM runs r WHERE sweep_id = :s ORDER BY id"
            ),
            {"s": sweep_id},
        )
        return [dict(r._mapping) for r in rows]


def statuses(stack: FaultStack, sweep_id: int) -> dict[str, int]:
    with session_scope(stack.database_url, readonly=True) as session:
        return repo.status_counts(session, sweep_id)


def wait_all_terminal(stack: FaultStack, sweep_id: int, timeout: float = 120) -> None:
    def done() -> bool:
        counts = statuses(stack, sweep_id)
        return counts["queued"] == 0 and counts["running"] == 0

    try:
        wait_for(done, timeout, f"every run of sweep {sweep_id} to finish", interval=0.3)
    except AssertionError:
        logs = stack.worker_logs()[-6000:]
        raise AssertionError(f"{statuses(stack, sweep_id)}\n--- worker logs ---\n{logs}") from None


def running_on(stack: FaultStack, pid: int) -> list[int]:
    """Ids of the runs the process ``pid`` is training right now (runs.worker is host:pid)."""
    with session_scope(stack.database_url, readonly=True) as session:
        return list(
            session.execute(
                text("SELECT id FROM runs WHERE status = 'running' AND worker LIKE :w"),
                {"w": f"%:{pid}"},
            ).scalars()
        )


def checkpoints_of(stack: FaultStack, run_ids: list[int]) -> dict[int, tuple[int, int, str]]:
    """{run id: (attempt that wrote it, epoch, sha256)} of the runs' stored checkpoints."""
    with session_scope(stack.database_url, readonly=True) as session:
        rows = session.execute(
            text("SELECT run_id, attempt, epoch, sha256 FROM checkpoints WHERE run_id = ANY(:ids)"),
            {"ids": list(run_ids)},
        )
        return {int(r): (int(a), int(e), str(h)) for r, a, e, h in rows}


def resumed_runs(stack: FaultStack) -> set[int]:
    """Runs that some worker resumed from a checkpoint (the runner and population tasks log it)."""
    logs = stack.worker_logs()
    return {
        int(line.split("run ", 1)[1].split(":", 1)[0])
        for line in logs.splitlines()
        if "resumes from its checkpoint" in line
    }


def check_sweep(stack: FaultStack, sweep_id: int) -> dict[str, int]:
    """The suite's invariants, checked on the database after the fault; returns the counts.

    Every run terminal; exactly one row per (run, recorded epoch) with no gap, each row equal to
    the clean reference run's metrics; one weights row per succeeded run, equal to the reference
    weights; none for a run that did not finish training.
    """
    runs = runs_of(stack, sweep_id)
    with session_scope(stack.database_url, readonly=True) as session:
        dupes = session.execute(
            text(
                "SELECT e.run_id, e.epoch, count(*) FROM epoch_metrics e JOIN runs r "
                "ON r.id = e.run_id WHERE r.sweep_id = :s GROUP BY e.run_id, e.epoch "
                "HAVING count(*) > 1"
            ),
            {"s": sweep_id},
        ).all()
    assert not dupes, f"duplicated epoch rows: {dupes[:5]}"
    for run in runs:
        assert run["status"] in TERMINAL, f"run {run['id']} stuck in {run['status']}"
        config = run["config"] if isinstance(run["config"], dict) else json.loads(run["config"])
        weights, metrics = reference(json.dumps(config, sort_keys=True), int(run["seed"]))
        with session_scope(stack.database_url, readonly=True) as session:
            rows = repo.epoch_rows(session, run["id"])
            stored = repo.load_weights(session, run["id"]) if run["weights"] else None
        epochs = [r.epoch for r in rows]
        if run["status"] in ("succeeded", "diverged", "cancelled"):
            last = run["epochs_run"]
            # A run cancelled before it started has no epochs at all.
            expected = [] if last is None else due_epochs(last, config["log_every"])
            assert epochs == expected, f"run {run['id']}: epochs {epochs[:5]}... != {expected[:5]}"
        for row in rows:
            ref = metrics[row.epoch]
            got = (row.loss, row.accuracy, row.max_error)
            assert got == (ref["loss"], ref["accuracy"], ref["max_error"]), (
                f"run {run['id']} epoch {row.epoch}: {got} differs from the clean run"
            )
        if run["status"] == "succeeded":
            assert run["weights"] == 1, f"run {run['id']}: {run['weights']} weights rows"
            assert stored is not None
            for mine, clean in zip(stored, weights, strict=True):
                np.testing.assert_array_equal(mine, clean)
        else:
            assert run["weights"] == 0, f"run {run['id']} ({run['status']}) has weights"
    counts = statuses(stack, sweep_id)
    say(
        f"checked sweep {sweep_id}: {counts}; every run terminal, one row per recorded epoch, "
        "rows and weights bit-identical to clean runs of the same seeds"
    )
    return counts


# --- processes ----------------------------------------------------------------------------


def pool_children(worker: Worker) -> list[int]:
    path = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children")
    try:
        return [int(c) for c in path.read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    """Running or sleeping: not gone, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def busy_child(
    stack: FaultStack,
    worker: Worker | list[Worker],
    timeout: float = 30,
    exclude: set[int] = frozenset(),  # type: ignore[assignment]
) -> tuple[int, int]:
    """(pid, run id) of a live pool child of ``worker`` (or of any of a list of workers, the
    first one first) that is training a run; waits for one. ``exclude``: pids already
    killed (a process dies a moment after SIGKILL, and its run stays 'running' till then)."""
    workers = worker if isinstance(worker, list) else [worker]
    found: list[tuple[int, int]] = []

    def look() -> bool:
        for w in workers:
            for pid in filter(alive, pool_children(w)):
                if pid in exclude:
                    continue
                runs = running_on(stack, pid)
                if runs:
                    found.append((pid, runs[0]))
                    return True
        return False

    pids = [w.proc.pid for w in workers]
    wait_for(look, timeout, f"a pool child of worker(s) {pids} to be training", 0.1)
    return found[-1]


def kill_worker_group(worker: Worker) -> None:
    """kill -9 a whole worker: main process and pool children (its own process group)."""
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)


def stop_all(stack: FaultStack) -> None:
    for worker in stack.workers:
        for pid in pool_children(worker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a stopped child would ignore the shutdown
    stack.stop_workers()


def wait_seconds(seconds: float) -> None:
    time.sleep(seconds)


__all__ = [
    "FaultStack",
    "busy_child",
    "check_sweep",
    "checkpoints_of",
    "free_port",
    "kill_worker_group",
    "make_sweep",
    "new_stack",
    "pool_children",
    "resumed_runs",
    "say",
    "stop_all",
    "wait_all_terminal",
    "wait_for",
]
