"""`bplab sweep extend` of a Celery sweep, end to end (issue 19): real PostgreSQL, Redis and a
`bplab --db URL worker` process; the new cells, and only they, are trained, each once."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
import yaml

from tests.distributed.stack import Stack, create_database, drop_database

CLI = [sys.executable, "-m", "service.cli"]


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    url = create_database()
    s = Stack(tmp=tmp_path, database_url=url)
    try:
        migrated = s.bplab("db", "upgrade")
        assert migrated.returncode == 0, migrated.stderr
        # --db over an environment that names another database: the worker's processes must
        # write where the option says (service/commands/worker.py hands the URL on).
        env = s.env(BPLAB_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/elsewhere")
        s.env = lambda **extra: {**env, **extra}  # type: ignore[method-assign]
        worker = s.start_worker([*CLI, "--db", url, "worker"])
        s.wait_ready(worker)
        yield s
    finally:
        try:
            s.stop_workers()
        finally:
            s.clean_redis()
            drop_database(url)


@pytest.mark.postgres
@pytest.mark.redis
def test_extend_trains_each_new_cell_once_on_the_workers(stack: Stack) -> None:
    spec = stack.tmp / "s.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "celery-extend",
                "dataset": "xor",
                "seeds": 2,
                "parameters": {"learning_rate": [0.5, 2.0], "epochs": 80, "log_every": 10},
            }
        )
    )
    db = ["--db", stack.database_url]

    def bplab(*args: str) -> str:
        done = stack.run([*CLI, *db, *args], timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr + stack.worker_logs()
        return done.stdout

    sweep_id = bplab("sweep", "submit", str(spec)).strip()
    bplab("sweep", "watch", sweep_id, "--timeout", "120")
    first = {r["id"]: r for r in json.loads(bplab("runs", sweep_id, "--format", "json"))}
    bplab("sweep", "extend", sweep_id, "--seeds", "4")
    bplab("sweep", "watch", sweep_id, "--timeout", "120")
    runs = json.loads(bplab("runs", sweep_id, "--format", "json"))
    cells = sorted((r["params"]["learning_rate"], r["seed"]) for r in runs)
    assert cells == [(lr, s) for lr in (0.5, 2.0) for s in range(4)]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert all(r["attempt"] == 1 for r in runs)  # each trained once
    for r in runs:  # the first four untouched
        if r["id"] in first:
            assert r["finished_at"] == first[r["id"]]["finished_at"]
