"""How the local pool starts its processes (issue 22): in the bplab program, forked when no
other thread runs, so they inherit the parent's imports instead of paying them again;
spawned otherwise, and always for a library caller. Either way they train with one BLAS
thread, open their own database connections, and produce the same numbers bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# A parent that, like the bplab program, allows forking, has loaded NumPy (with no BLAS
# thread setting) and used the database before it starts the pool; with "thread" it also
# runs a thread (as a progress bar does). It trains a small sweep, then reads with its own
# engine again.
_PARENT = textwrap.dedent(
    """
    import json, sys, threading, time
    import numpy  # noqa: F401  loaded before the pool, as in the CLI
    import threadpoolctl
    from service import local, program
    from service.db import artifacts
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    url, spec_path, mode = sys.argv[1:4]
    program.claim()  # as the bplab program does: its pools may fork
    with session_scope(url) as session:
        sweep_id = create_sweep_from_spec(session, load_spec(spec_path), backend="local")
        run_ids = repo.run_ids(session, sweep_id, status="queued")
    if mode == "thread":
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    with local.LocalPool(2, url) as pool:
        method = pool.ctx.get_start_method()
        info = pool.executor.submit(threadpoolctl.threadpool_info).result()
        blas = [lib["num_threads"] for lib in info if lib["user_api"] == "blas"]
        report = pool.run(run_ids)
    with session_scope(url, readonly=True) as session:
        weights = [  # in run order: the two sweeps of one database have their own ids
            [a.tobytes().hex() for a in artifacts.load_weights(session, run_id)]
            for run_id in sorted(run_ids)
        ]
    print(json.dumps({"method": method, "blas": blas, "statuses": report.statuses,
                      "weights": weights}))
    """
)

_SPEC = """
name: pool-start
dataset: xor
seeds: 3
parameters:
  learning_rate: [0.5, 1.0]
  hidden: [2, 3]
  momentum: 0.9
  epochs: 300
  log_every: 50
"""


def _train(url: str, tmp_path: Path, mode: str) -> dict:
    spec = tmp_path / "spec.yaml"
    spec.write_text(_SPEC)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", _PARENT, url, str(spec), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_forked_and_spawned_pools_train_the_same_bits_with_one_blas_thread(
    db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL too: the parent's connections are closed before the fork, the children
    open their own, and the parent reads again after."""
    forked = _train(db_url, tmp_path, "alone")
    spawned = _train(db_url, tmp_path, "thread")
    assert forked["method"] == "fork"
    assert spawned["method"] == "spawn"  # a running thread rules the fork out
    for outcome in (forked, spawned):
        assert outcome["blas"] == [1]
        assert set(outcome["statuses"].values()) == {"succeeded"}
        assert len(outcome["statuses"]) == 12
    assert forked["weights"] == spawned["weights"]
    assert all(forked["weights"])


def test_a_library_caller_gets_spawned_processes() -> None:
    from service import local

    # this test process is not the bplab program: it has used Celery, run threads
    assert local.pool_context().get_start_method() == "spawn"
