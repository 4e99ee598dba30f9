"""median stopping decided across two real `bplab worker` processes (Celery, PostgreSQL).

Each run is its own task and the runs alternate between the two workers' queues, so the
seeds of one configuration train on different workers: a decision reads the rows both
workers wrote, and a configuration
pruned by one worker stops its seeds on the other (unit: config, through pruned_configs).
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from service.db import repository as repo
from service.db.session import session_scope
from service.producer import publish_runs
from service.spec import load_spec
from service.sweeps import create_sweep_from_spec
from tests.faults.harness import FaultStack, pool_children, wait_all_terminal
from tests.pruning.helpers import LEARNING_RATES, pruned_configs, runs

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_median_across_two_celery_workers(stack: FaultStack) -> None:
    spec = {
        "name": f"prune-{uuid.uuid4().hex[:6]}",
        "dataset": "xor",
        "seeds": 3,
        "parameters": {
            "learning_rate": LEARNING_RATES,
            "momentum": 0.9,
            "hidden": 2,
            "epochs": 3000,
        },
        "early_terminate": {"type": "median", "min_epochs": 25},
    }
    path = stack.tmp / "prune.yaml"
    path.write_text(yaml.safe_dump(spec))
    # One queue per worker (the second's name contains the first's, so the fixture's cleanup
    # finds both), and every other run on each: one worker cannot take every task.
    home = stack.queue
    workers = [stack.start_bplab_worker()]
    stack.queue = f"{home}_b"
    workers.append(stack.start_bplab_worker())
    stack.queue = home
    # recorded once both workers are up: a run queued past the grace period would be
    # published again by a worker's reconciler, on its own queue
    with session_scope(stack.database_url) as session:
        sweep_id = create_sweep_from_spec(session, load_spec(path), backend="celery")
        run_ids = repo.run_ids(session, sweep_id)
    publish_runs(run_ids[0::2], stack.broker_url, queue=home)
    publish_runs(run_ids[1::2], stack.broker_url, queue=f"{home}_b")
    wait_all_terminal(stack, sweep_id, timeout=240)

    rows = runs(stack.database_url, sweep_id)
    with session_scope(stack.database_url, readonly=True) as session:
        pids = {int(r.worker.rsplit(":", 1)[1]) for r in repo.list_runs(session, sweep_id)}
    assert all(pids & {w.proc.pid, *pool_children(w)} for w in workers), "one worker trained all"
    statuses = {r["status"] for r in rows}
    assert statuses <= {"succeeded", "pruned"}, statuses
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned, "median stopped nothing"
    decided = pruned_configs(stack.database_url, sweep_id)
    for r in pruned:
        # every pruned seed carries its configuration's decision, made at a check epoch
        assert r["config_key"] in decided
        assert r["pruned_epoch"] == decided[r["config_key"]] and r["pruned_epoch"] % 25 == 0
        assert r["pruned_value"] > r["pruned_threshold"]
        assert r["epochs_run"] < 3000
    # what was not stopped trained to the end; with concurrency which configurations those
    # are may vary (README), but never all of them nor none
    kept = [r for r in rows if r["status"] == "succeeded"]
    assert kept and all(r["epochs_run"] == 3000 and r["pruned_epoch"] is None for r in kept)
