"""Service overhead: recording vs Optuna, a Celery sweep vs bare Celery, local pool scaling.

Run by hand (not in CI; needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379
except ``--only local``):

    python benchmarks/service.py [--only recording|celery|local] [--runs 1000] [--epochs 1000]

* recording: the cost per recorded epoch row of bplab (batches of 1000 and 100 rows, each
  batch one fenced transaction, as the EpochRecorder writes them) vs Optuna's
  ``trial.report`` per step, on the same database (PostgreSQL, then SQLite); measured by
  benchmarks/_service_recording.py.
* celery: a ``--runs``-run XOR sweep (``--epochs`` full-batch epochs each, log_every 10)
  through Celery + Redis + PostgreSQL with 2 worker processes, timed from submission (spec
  loaded, sweep written, tasks published) to the last run finished (``--log-every``: every
  how many epochs a row is recorded, default 10), vs the rate of bare
  no-op tasks (benchmarks/noop_app.py) through the same broker and 2 processes, measured in
  the same run: alternately ``--celery-repeat`` times each, best of each.
* local: the same kind of sweep in the local process pool (SQLite) with 2 processes vs 1
  (``--local-runs`` x ``--local-epochs``: long enough that starting the processes, about
  half a second, does not dominate), timed around run_queued_locally, alternately
  ``--local-repeat`` times each, best of each (all of them, with CPU seconds and load
  average, in the output), beside what the machine allows at the same moments: the engine
  alone training a quarter of the runs as one population, two populations in one process
  one after the other vs one in each of two processes. Needs no PostgreSQL or Redis.

Everything runs against a throwaway PostgreSQL database and a unique Redis queue, both
removed at the end; only processes this script starts are stopped. Results go to
benchmarks/results/service.json.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _service_recording as rec  # noqa: E402
import _support  # noqa: E402

_support.fix_sys_path()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

WORKERS = 2


# --- sweeps ------------------------------------------------------------------------------
LOG_EVERY = 10


def xor_spec(path: Path, runs: int, epochs: int, name: str) -> Path:
    """A grid over learning rate x momentum x seeds with ``runs`` runs of ``epochs`` epochs."""
    seeds = 10 if runs >= 100 else 1
    per = max(1, runs // seeds)
    lrs = max(d for d in range(1, int(per**0.5) + 1) if per % d == 0)
    moms = per // lrs
    spec = {
        "name": name,
        "dataset": "xor",
        "method": "grid",
        "seeds": seeds,
        "parameters": {
            "learning_rate": [round(0.1 + 0.2 * i, 3) for i in range(lrs)],
            "momentum": [round(0.9 * i / moms, 3) for i in range(moms)],
            "hidden": [2],
            "cost": "sse",
            "batch_size": "full",
            "init": 0.3,
            "epochs": epochs,
            "log_every": LOG_EVERY,
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def noop_rate(children: _support.Children, tmp: Path, tasks: int) -> float:
    """Bare Celery: ``tasks`` no-op tasks through 2 prefork processes; tasks per second."""
    import redis

    from service.producer import TaskMessage, publish

    queue = _support.unique_queue("bplab-bench-noop")
    key = f"{queue}:done"
    env = _support.child_env(BPLAB_BROKER_URL=_support.REDIS_URL)
    log = tmp / "noop-worker.log"
    args = [sys.executable, "-m", "celery", "-A", "benchmarks.noop_app", "worker"]
    args += ["--pool", "prefork", "-c", str(WORKERS), "-Q", queue, "--without-mingle"]
    args += ["--without-gossip", "--loglevel", "INFO", "--hostname", f"{queue}@%h"]
    proc = children.start(args, env, log)
    r = redis.Redis.from_url(_support.REDIS_URL)
    try:
        _support.wait_ready(log, proc)
        publish([TaskMessage("bench.noop", {"key": key})] * 20, _support.REDIS_URL, queue=queue)
        while int(r.get(key) or 0) < 20:  # warm: both processes have run a task
            time.sleep(0.05)
        r.delete(key)
        t = time.perf_counter()
        publish([TaskMessage("bench.noop", {"key": key})] * tasks, _support.REDIS_URL, queue=queue)
        while int(r.get(key) or 0) < tasks:
            time.sleep(0.005)
        return tasks / (time.perf_counter() - t)
    finally:
        children.stop(proc)
        r.delete(key)
        r.close()
        _support.clear_queue(queue)


def submit(spec_path: Path, url: str, queue: str) -> tuple[int, int]:
    """What `bplab sweep submit` does, in this process: (sweep id, tasks published)."""
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.dispatch import publish_groups
    from service.grouping import SUBMIT_MIN_TASKS, group_run_ids
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    spec = load_spec(spec_path, max_runs=100_000)
    with session_scope(url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
        run_ids = repo.run_ids(session, sweep_id)
        groups = group_run_ids(session, run_ids, min_groups=SUBMIT_MIN_TASKS)
    publish_groups(groups, _support.REDIS_URL, queue=queue)
    return sweep_id, len(groups)


def celery_sweep(children: _support.Children, tmp: Path, url: str, runs: int, epochs: int) -> dict:
    queue = _support.unique_queue()
    log = tmp / "bplab-worker.log"
    proc = _support.start_bplab_worker(children, log, url, queue, WORKERS)
    try:
        _support.wait_ready(log, proc)
        warm = xor_spec(tmp / "warm.yaml", 4, 10, "warm-up")
        sweep_id, _ = submit(warm, url, queue)
        _support.wait_finished(url, sweep_id, timeout=120)
        spec = xor_spec(tmp / "xor.yaml", runs, epochs, f"bench-xor-{runs}")
        t = time.perf_counter()
        sweep_id, sent = submit(spec, url, queue)
        submitted = time.perf_counter() - t
        counts = _support.wait_finished(url, sweep_id, timeout=3600)
        elapsed = time.perf_counter() - t
        return {
            "runs": sum(counts.values()),
            "tasks_published": sent,
            "statuses": counts,
            "submit_s": submitted,
            "elapsed_s": elapsed,
            "runs_per_s": sum(counts.values()) / elapsed,
        }
    finally:
        children.stop(proc)
        _support.clear_queue(queue)


def local_sweep(tmp: Path, runs: int, epochs: int, workers: int) -> dict:
    """Train a fresh sweep in the local pool (SQLite) with ``workers`` processes: wall seconds
    of run_queued_locally, the CPU seconds its processes used, and the load average before."""
    import resource

    from service.db.session import session_scope
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec, run_queued_locally

    url = f"sqlite:///{tmp / f'local-{workers}-{uuid.uuid4().hex[:6]}.db'}"
    spec = load_spec(xor_spec(tmp / f"local{workers}.yaml", runs, epochs, "local"))
    with session_scope(url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="local")
    load = os.getloadavg()[0]

    def cpu() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c, t = cpu(), time.perf_counter()
    report = run_queued_locally(sweep_id, workers=workers, url=url)
    wall = time.perf_counter() - t
    assert report.count("succeeded") == runs, report.statuses
    return {"wall_s": wall, "cpu_s": cpu() - c, "load_before": load}


def _engine_only(members: int, epochs: int, start: Any = None) -> float:
    """Seconds to train one XOR population of ``members`` nets for ``epochs`` epochs with the
    engine alone (no database, no callbacks), once ``start`` (a barrier) lets it go."""
    import numpy as np

    from engine import TrainConfig, train_population
    from service.datasets import training_data
    from service.networks import network_from_config

    config = rec.xor_config() | {"epochs": epochs, "log_every": LOG_EVERY, "init": 0.3}
    X, Y, _ = training_data(config, 0)
    rngs = [np.random.default_rng(k) for k in range(members)]
    nets = [network_from_config(config, X.shape[1], Y.shape[1], r) for r in rngs]
    if start is not None:
        start.wait()
    t = time.perf_counter()
    train_population(nets, X, Y, [TrainConfig.from_dict(config)] * members, rngs=rngs)
    return time.perf_counter() - t


def engine_ceiling(members: int, epochs: int) -> float:
    """What 2 processes can gain over 1 on this machine right now, with no database and no
    start-up: two populations one after the other in one process vs one in each of two
    processes started together. The pool cannot beat it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool, ctx.Manager() as manager:
        list(pool.map(_engine_only, [8, 8], [10, 10]))  # both started and warm
        one = pool.submit(_engine_only, members, epochs).result()
        one += pool.submit(_engine_only, members, epochs).result()
        start = manager.Barrier(2)
        both = max(pool.map(_engine_only, [members] * 2, [epochs] * 2, [start] * 2))
    return one / both


def local_pool(tmp: Path, runs: int, epochs: int, repeat: int) -> dict:
    """1 process vs 2, alternating, ``repeat`` times each; the best of each counts. The machine
    is shared: another job on one of the 2 cores slows the 2-process sweep, never the
    1-process one, so single measurements mostly measure the neighbours."""
    trials: dict[int, list[dict]] = {1: [], 2: []}
    ceilings = []
    for _ in range(repeat):
        for workers in (1, 2):
            trials[workers].append(local_sweep(tmp, runs, epochs, workers))
        ceilings.append(engine_ceiling(math.ceil(runs / 4), epochs))
    t1 = min(t["wall_s"] for t in trials[1])
    t2 = min(t["wall_s"] for t in trials[2])
    return {
        "runs": runs,
        "epochs": epochs,
        "one_process_s": t1,
        "two_processes_s": t2,
        "speedup": t1 / t2,
        "trials": {str(k): v for k, v in trials.items()},
        "engine_only_speedups": ceilings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("recording", "celery", "local"), default=None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=20_000, help="epoch rows per measurement")
    parser.add_argument("--steps", type=int, default=300, help="Optuna reports measured")
    parser.add_argument("--log-every", type=int, default=10, help="of the benchmark sweeps")
    parser.add_argument("--local-runs", type=int, default=200)
    parser.add_argument("--local-epochs", type=int, default=20000)
    parser.add_argument("--local-repeat", type=int, default=3, help="local sweeps of each kind")
    parser.add_argument("--celery-repeat", type=int, default=3, help="Celery sweeps and no-op runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    global LOG_EVERY
    LOG_EVERY = args.log_every
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    results: dict = {}
    children = _support.Children()
    try:
        with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
            tmp = Path(tmpdir)
            # the local pool runs on SQLite alone: PostgreSQL only for the parts that use it
            pg_url = stack.enter_context(_support.pg_database()) if args.only != "local" else ""
            if args.only in (None, "recording"):
                results["recording"] = rec.recording(pg_url, args.rows, args.steps)
            if args.only in (None, "celery"):
                # alternately, best of each: the machine's speed moves by up to 3x within
                # minutes, and the ratio divides two rates taken at different moments
                rates, sweeps = [], []
                for _ in range(args.celery_repeat):
                    rates.append(noop_rate(children, tmp, args.runs))
                    sweeps.append(celery_sweep(children, tmp, pg_url, args.runs, args.epochs))
                sweep = max(sweeps, key=lambda s: s["runs_per_s"])
                rate = max(rates)
                sweep["noop_tasks_per_s"] = rate
                sweep["ratio_to_noop"] = sweep["runs_per_s"] / rate
                sweep["trials"] = [
                    {"noop_tasks_per_s": r, "runs_per_s": s["runs_per_s"]}
                    for r, s in zip(rates, sweeps, strict=True)
                ]
                results["celery"] = sweep
                pairs = ", ".join(
                    f"{s['runs_per_s']:.0f}/{r:.0f}" for r, s in zip(rates, sweeps, strict=True)
                )
                print(
                    f"celery: {sweep['runs']} XOR runs x {args.epochs} epochs, best of "
                    f"{args.celery_repeat}: {sweep['elapsed_s']:.2f} s ({sweep['runs_per_s']:.0f} "
                    f"runs/s; submit {sweep['submit_s']:.2f} s, {sweep['tasks_published']} tasks) "
                    f"vs bare Celery no-op {rate:.0f} tasks/s: x{sweep['ratio_to_noop']:.2f} "
                    f"(each trial, runs/s over no-op tasks/s: {pairs})",
                    flush=True,
                )
            if args.only in (None, "local"):
                local = local_pool(tmp, args.local_runs, args.local_epochs, args.local_repeat)
                results["local"] = local
                t1, t2 = local["one_process_s"], local["two_processes_s"]
                each = "; ".join(
                    f"{k} process(es): "
                    + ", ".join(
                        f"{t['wall_s']:.2f} s ({t['cpu_s']:.1f} s CPU, load {t['load_before']:.2f})"
                        for t in v
                    )
                    for k, v in local["trials"].items()
                )
                print(
                    f"local pool: {args.local_runs} runs x {args.local_epochs} epochs, best of "
                    f"{args.local_repeat}: 1 process {t1:.2f} s, 2 processes {t2:.2f} s: "
                    f"x{t1 / t2:.2f} ({each}); the engine alone, 2 processes over 1, at the "
                    f"same times: " + ", ".join(f"x{c:.2f}" for c in local["engine_only_speedups"]),
                    flush=True,
                )
    finally:
        children.stop_all()
    path = _support.write_json("service.json", {"args": vars(args), **results}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
