"""Issue 16 item 7: a model-based search on Celery, end to end with two real `bplab worker`
processes (prefork pools), PostgreSQL and Redis at 127.0.0.1.

`bplab sweep submit` records the search and publishes its first configurations; then
`bplab sweep drive` and `bplab sweep watch` are started at the same time, so two drivers
contend for the search's lease while the workers train: one drives, the other waits and ends
once the search is complete.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml
from sqlalchemy import text

from service.db import search as db
from service.db.session import session_scope
from tests.distributed.bplab_cli import BPLAB
from tests.distributed.stack import Stack, migrated_stack
from tests.distributed.test_integration import assert_trained_once, run_rows

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

RUN_CAP = 8
SEEDS = [1, 2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("search_celery")
    with migrated_stack(tmp) as s:
        yield s


def write_search_spec(stack: Stack) -> str:
    spec = {
        "name": f"search-{uuid.uuid4().hex[:6]}",
        "dataset": "xor",
        "method": "tpe",
        "run_cap": RUN_CAP,
        "seeds": SEEDS,
        "sampler_seed": 7,
        "metric": {"name": "final_loss", "goal": "minimize", "aggregate": "mean"},
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": 0.05, "max": 3.0},
            "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.95},
            "hidden": {"distribution": "int_uniform", "min": 2, "max": 4},
            # long enough that a configuration is still training when the next is published,
            # so both workers take part
            "epochs": 3000,
            "log_every": 10,
        },
    }
    path = stack.tmp / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def start_driver(stack: Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BPLAB, "sweep", *args, "--format", "json"],
        env=stack.env(),
        cwd=stack.tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_search_submitted_and_driven_on_two_workers(stack: Stack) -> None:
    submitted = stack.bplab("sweep", "submit", write_search_spec(stack))
    assert submitted.returncode == 0, submitted.stderr
    assert re.fullmatch(r"\d+\n", submitted.stdout), submitted.stdout
    sweep_id = int(submitted.stdout)
    # submit asks for the first batch (--parallel's default, 4) and leaves the rest to a driver
    assert "tpe search started, 4 configuration(s) queued" in submitted.stderr, submitted.stderr
    with session_scope(stack.database_url, readonly=True) as session:
        assert len(db.list_trials(session, sweep_id)) == 4

    drivers = [
        start_driver(stack, "drive", str(sweep_id), "--parallel", "2"),
        start_driver(stack, "watch", str(sweep_id)),
    ]
    outputs = [d.communicate(timeout=400) for d in drivers]
    for driver, (_out, err) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, err + stack.worker_logs()[-4000:]
    # both print the same trials at the end, read back from PostgreSQL
    printed = [json.loads(out) for out, _ in outputs]
    assert printed[0] == printed[1]
    assert [t["trial"] for t in printed[0]] == list(range(RUN_CAP))
    assert all(t["state"] == "complete" and t["repeat_of"] is None for t in printed[0])

    with session_scope(stack.database_url, readonly=True) as session:
        trials = db.list_trials(session, sweep_id)
        lease = db.lease_info(session, sweep_id, lease_s=30)
        configs = session.execute(
            text("SELECT DISTINCT config_key FROM runs WHERE sweep_id = :s"), {"s": sweep_id}
        ).scalars()
        run_keys = set(configs)
    # run_cap respected, each trial told once, and no configuration asked twice
    assert [t["number"] for t in trials] == list(range(RUN_CAP))
    assert sorted(t["told_seq"] for t in trials) == list(range(1, RUN_CAP + 1))
    keys = [t["config_key"] for t in trials]
    assert len(set(keys)) == RUN_CAP and set(keys) == run_keys
    assert lease is not None and not lease["live"]  # released by the driver that ended last

    rows = run_rows(stack, sweep_id)
    assert len(rows) == RUN_CAP * len(SEEDS)
    for row in rows:  # succeeded in one attempt, every epoch row once, weights stored
        assert_trained_once(stack, row)
    by_config: dict[str, list[int]] = {}
    for row in rows:
        config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
        by_config.setdefault(json.dumps(config, sort_keys=True), []).append(row["id"])
    assert all(len(ids) == len(SEEDS) for ids in by_config.values())
    # both workers trained configurations (each has one pool process, so one name each)
    assert len({r["worker"] for r in rows}) == 2, {r["worker"] for r in rows}
    # the trials' values are the mean final loss over each configuration's seeds
    with session_scope(stack.database_url, readonly=True) as session:
        losses = dict(
            session.execute(
                text(
                    "SELECT config_key, avg(final_loss) FROM runs WHERE sweep_id = :s "
                    "GROUP BY config_key"
                ),
                {"s": sweep_id},
            ).all()
        )
    for trial, row in zip(trials, printed[0], strict=True):
        assert row["value"] == pytest.approx(float(losses[trial["config_key"]]), rel=1e-9)
