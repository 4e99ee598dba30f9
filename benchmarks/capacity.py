"""Capacity: runs/s through Celery, PostgreSQL's write capacity, per-run costs, and a model.

Run by hand (not in CI; needs PostgreSQL on 127.0.0.1:5432 and a `redis-server` binary):

    python benchmarks/capacity.py [--only celery|write] [--repeat 2] [--db-cores 1 8 32]

1. celery: sweeps of a few run shapes (XOR 2-2-1 and digits 64-32-10; epochs, log_every,
   population size) through `bplab worker -c 1` and `-c 2`, taking turns; runs/s from
   submission to the last run finished. For each sweep, read before and after: the CPU
   seconds of the database's backends (/proc) and of the worker's processes, epoch rows and
   database growth (pg_database_size), Redis' commands (a redis-server of our own on
   127.0.0.1: the shared one counts everyone). Statements and commits per run are counted in
   the client, running the tasks' executor in this process on a few groups of each shape
   (pg_stat_database's counts arrive up to 10 s late); Redis' CPU per task is measured with
   no-op tasks at full speed (over a sweep its idle timers weigh as much as the tasks).
2. write: epoch rows/s into epoch_metrics with 1 and 2 concurrent writer processes: bplab's
   fenced population write (service.db.bulk.insert_epoch_rows_fenced_many, what workers
   run), raw COPY and raw executemany (each with the same fence UPDATE per transaction), and
   fenced transactions without rows (commits/s). Batches: 64 runs x 100 rows (a population
   flush at log_every 10) and 1 run x 1,000 rows.
3. model (printed after 1): per shape, from the per-run costs measured in 1, the number of
   worker processes at which PostgreSQL (its CPU, with --db-cores cores as fast as these, or
   this machine's measured row and commit rates) and then Redis (one core) is saturated.

Throwaway PostgreSQL databases; only processes started here are stopped (by pid/pgid).
Results: benchmarks/results/capacity.json.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _capacity_probe as probe  # noqa: E402
import _capacity_report as report  # noqa: E402
import _support  # noqa: E402

_support.fix_sys_path()

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

# name -> (dataset, runs, epochs, log_every, population size); a submission cuts each shape
# into at least 8 tasks (service.grouping.SUBMIT_MIN_TASKS), so 128 runs make populations of 16
SHAPES = {
    "xor e1000 log1 pop64": ("xor", 512, 1000, 1, 64),
    "xor e1000 log10 pop64": ("xor", 512, 1000, 10, 64),
    "xor e1000 log10 pop1": ("xor", 128, 1000, 10, 1),
    "xor e100 log10 pop64": ("xor", 512, 100, 10, 64),
    "digits e20 log1 pop16": ("digits", 128, 20, 1, 16),
    "digits e20 log1 pop1": ("digits", 64, 20, 1, 1),
}


def spec_for(shape: str, path: Path) -> Path:
    dataset, runs, epochs, log_every, _pop = SHAPES[shape]
    seeds = 8
    per = runs // seeds
    lrs = max(d for d in range(1, int(per**0.5) + 1) if per % d == 0)
    params: dict = {
        "learning_rate": [round(0.1 + 0.01 * i, 3) for i in range(lrs)],
        "momentum": [round(0.9 * i / (per // lrs), 4) for i in range(per // lrs)],
        "epochs": epochs,
        "log_every": log_every,
    }
    if dataset == "xor":
        params |= {"hidden": [2], "cost": "sse", "batch_size": "full", "init": 0.3}
    else:  # examples/digits.yaml without the validation split (which makes each seed a shape)
        params |= {
            "hidden": 32,
            "activation": "tanh",
            "output_activation": "softmax",
            "cost": "cross_entropy",
            "init": "xavier",
            "batch_size": 32,
            "stop_within": None,
        }
    spec = {
        "name": shape,
        "dataset": dataset,
        "method": "grid",
        "seeds": seeds,
        "parameters": params,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def submit(spec_path: Path, url: str, broker: str, queue: str, population: int) -> int:
    """What `bplab sweep submit` does, in this process, with BPLAB_POPULATION_SIZE=population."""
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.dispatch import publish_groups
    from service.grouping import SUBMIT_MIN_TASKS, group_run_ids
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    spec = load_spec(spec_path, max_runs=100_000)
    with session_scope(url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
        ids = repo.run_ids(session, sweep_id)
        groups = group_run_ids(session, ids, size=population, min_groups=SUBMIT_MIN_TASKS)
    publish_groups(groups, broker, queue=queue)
    return sweep_id


def wait_finished(url: str, sweep_id: int, timeout: float = 900.0) -> dict[str, int]:
    """The sweep's status counts once no run is queued or running."""
    from service.db import repository as repo
    from service.db.session import session_scope

    deadline = time.monotonic() + timeout
    while True:
        with session_scope(url) as s:
            counts: dict[str, int] = dict(repo.status_counts(s, sweep_id))
        if counts.get("queued", 0) + counts.get("running", 0) == 0 and sum(counts.values()):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"sweep {sweep_id} not finished after {timeout} s: {counts}")
        time.sleep(0.02)


def start_worker(children, tmp: Path, url: str, broker: str, queue: str, procs: int):
    env = _support.child_env(BPLAB_BROKER_URL=broker, BPLAB_DATABASE_URL=url, BPLAB_QUEUE=queue)
    log = tmp / f"worker-{queue}.log"
    args = [*_support.bplab_cmd(), "worker", "-c", str(procs), "-Q", queue, "-l", "INFO"]
    proc = children.start(args, env, log)
    deadline = time.monotonic() + 90
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def measured_sweep(shape: str, tmp: Path, url: str, broker: str, queue: str, worker) -> dict:
    """One sweep through a warm worker: runs/s and what the servers and the worker spent.

    CPU seconds from /proc; Redis' commands from its own counters (its CPU per task comes
    from ``redis_task_cost``: over a sweep its idle timers weigh as much as the tasks)."""
    _dataset, runs, _epochs, _log, population = SHAPES[shape]
    spec = spec_for(shape, tmp / "spec.yaml")
    pg0, rd0, w0 = probe.pg_counters(url), probe.redis_counters(broker), probe.group_cpu(worker.pid)
    t = time.perf_counter()
    sweep_id = submit(spec, url, broker, queue, population)
    counts = wait_finished(url, sweep_id)
    elapsed = time.perf_counter() - t
    pg1, rd1, w1 = probe.pg_counters(url), probe.redis_counters(broker), probe.group_cpu(worker.pid)
    assert counts.get("succeeded", 0) + counts.get("diverged", 0) == runs, counts
    pg = probe.pg_delta(pg0, pg1)
    per = lambda v: v / runs  # noqa: E731
    return {
        "shape": shape,
        "runs": runs,
        "elapsed_s": elapsed,
        "runs_per_s": runs / elapsed,
        "worker_cpu_per_run_s": per(w1 - w0),
        "pg_cpu_per_run_s": per(pg["pg_cpu_s"]),
        "epoch_rows_per_run": per(pg["epoch_rows"]),
        "db_bytes_per_run": per(pg["db_bytes"]),
        "redis_commands_per_run": per(rd1["commands"] - rd0["commands"]),
        "redis_tasks_per_run": per(rd1.get("cmd_lpush", 0) - rd0.get("cmd_lpush", 0)),
        "redis_commands": {
            k: rd1[k] - rd0.get(k, 0)
            for k in rd1
            if k.startswith("cmd_") and rd1[k] != rd0.get(k, 0)
        },
        "load_before": os.getloadavg()[0],
    }


def statement_costs(url: str, tmp: Path, shapes: list[str], groups_per_shape: int = 2) -> dict:
    """Statements and commits per run, counted in the client (SQLAlchemy events) while this
    process runs execute_runs, the executor a Celery task calls, on a few of each shape's
    groups. (pg_stat_database's counts arrive up to 10 s late and count every client.)"""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from service.db import repository as repo
    from service.db.session import session_scope
    from service.execution import execute_runs
    from service.grouping import SUBMIT_MIN_TASKS, group_run_ids
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    counts = {"statements": 0, "commits": 0}

    def on_statement(*_args) -> None:
        counts["statements"] += 1

    def on_commit(*_args) -> None:
        counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", on_statement)
    event.listen(Engine, "commit", on_commit)
    out = {}
    try:
        for shape in shapes:
            spec = load_spec(spec_for(shape, tmp / "cost.yaml"), max_runs=100_000)
            with session_scope(url) as s:
                ids = repo.run_ids(s, create_sweep_from_spec(s, spec, backend="celery"))
                groups = group_run_ids(s, ids, size=SHAPES[shape][4], min_groups=SUBMIT_MIN_TASKS)
            counts.update(statements=0, commits=0)
            done = 0
            for group in groups[:groups_per_shape]:
                execute_runs(group, url=url)
                done += len(group)
            out[shape] = {k: v / done for k, v in counts.items()}
    finally:
        event.remove(Engine, "before_cursor_execute", on_statement)
        event.remove(Engine, "commit", on_commit)
    return out


def redis_task_cost(tmp: Path, broker: str, tasks: int = 4000) -> dict:
    """Redis' CPU per Celery task at full speed: ``tasks`` no-op tasks (benchmarks/noop_app.py,
    bplab's Celery settings) through 2 processes, Redis' INFO cpu and commands before/after."""
    import redis

    from service.producer import TaskMessage, publish

    children, queue = _support.Children(), _support.unique_queue("bplab-capacity-noop")
    key = f"{queue}:done"
    env = _support.child_env(BPLAB_BROKER_URL=broker)
    args = [sys.executable, "-m", "celery", "-A", "benchmarks.noop_app", "worker", "-c", "2"]
    args += ["-Q", queue, "--without-mingle", "--without-gossip", "-l", "INFO"]
    log = tmp / "noop.log"
    proc, r = children.start(args, env, log), redis.Redis.from_url(broker)
    try:
        while "ready." not in log.read_text():
            if proc.poll() is not None:
                raise RuntimeError(f"no-op worker exited; see {log}")
            time.sleep(0.2)
        messages = [TaskMessage("bench.noop", {"key": key})]
        publish(messages * 20, broker, queue=queue)
        while int(r.get(key) or 0) < 20:
            time.sleep(0.05)
        r.delete(key)
        before, t = probe.redis_counters(broker), time.perf_counter()
        publish(messages * tasks, broker, queue=queue)
        while int(r.get(key) or 0) < tasks:
            time.sleep(0.02)
        wall, after = time.perf_counter() - t, probe.redis_counters(broker)
    finally:
        children.stop(proc)
        r.delete(key)
        r.close()
        _support.clear_queue(queue, broker)
    cpu = after["cpu_s"] - before["cpu_s"]
    return {
        "tasks": tasks,
        "tasks_per_s": tasks / wall,
        "redis_cpu_per_task_s": cpu / tasks,
        "redis_busy_fraction": cpu / wall,
        "commands_per_task": (after["commands"] - before["commands"]) / tasks,
    }


def celery_part(tmp: Path, url: str, broker: str, repeat: int, shapes: list[str]) -> list[dict]:
    """Each turn: 1 worker process then 2, every shape on each (A B A B)."""
    children, trials = _support.Children(), []
    try:
        for turn in range(repeat):
            for procs in (1, 2):
                queue = _support.unique_queue("bplab-capacity")
                worker = start_worker(children, tmp, url, broker, queue, procs)
                try:
                    warm = spec_for("xor e100 log10 pop64", tmp / "warm.yaml")
                    wait_finished(url, submit(warm, url, broker, queue, 64))
                    for shape in shapes:
                        row = measured_sweep(shape, tmp, url, broker, queue, worker)
                        row |= {"processes": procs, "turn": turn}
                        trials.append(row)
                        print(
                            f"  turn {turn} -c {procs} {shape:24s} {row['runs_per_s']:8.1f}"
                            f" runs/s (load {row['load_before']:.1f})",
                            flush=True,
                        )
                finally:
                    children.stop(worker)
                    _support.clear_queue(queue, broker)
    finally:
        children.stop_all()
    return trials


def summarize(trials: list[dict], shapes: list[str], costs: dict) -> list[dict]:
    """Per shape: best runs/s with 1 and 2 processes; per-run costs as medians over trials,
    statements and commits per run from ``statement_costs``."""
    out = []
    for shape in shapes:
        mine = [t for t in trials if t["shape"] == shape]
        row = {"shape": shape}
        for procs in (1, 2):
            rates = [t["runs_per_s"] for t in mine if t["processes"] == procs]
            row[f"runs_per_s_{procs}"] = max(rates)
            row[f"runs_per_s_{procs}_median"] = statistics.median(rates)
        for key in (
            "worker_cpu_per_run_s",
            "pg_cpu_per_run_s",
            "epoch_rows_per_run",
            "db_bytes_per_run",
            "redis_commands_per_run",
            "redis_tasks_per_run",
        ):
            row[key] = statistics.median(t[key] for t in mine)
        row["redis_commands"] = mine[-1]["redis_commands"]
        row["statements_per_run"] = costs[shape]["statements"]
        row["commits_per_run"] = costs[shape]["commits"]
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("celery", "write"), default=None)
    parser.add_argument("--repeat", type=int, default=2, help="turns of each comparison")
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--db-cores", nargs="*", type=int, default=[1, 8, 32])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    out: dict = {"args": vars(args)}
    summary, write = [], None
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "write"):
            with _support.pg_database("scaling_write") as url:
                write = out["write"] = probe.write_part(url, args.repeat)
        if args.only in (None, "celery"):
            with (
                _support.pg_database("scaling_celery") as url,
                probe.private_redis(tmp / "redis.log") as (broker, _proc),
            ):
                costs = statement_costs(url, tmp, args.shapes)
                redis_cost = redis_task_cost(tmp, broker)
                trials = celery_part(tmp, url, broker, args.repeat, args.shapes)
            summary = summarize(trials, args.shapes, costs)
            out |= {
                "celery_trials": trials,
                "celery": summary,
                "statements": costs,
                "redis_task_cost": redis_cost,
            }
    models = report.model(summary, args.db_cores, write, out.get("redis_task_cost"))
    out["model"] = models
    report.print_tables(summary, write, models, args.db_cores, out.get("redis_task_cost"))
    print(f"load average: {os.getloadavg()}")
    print(f"wrote {_support.write_json('capacity.json', out, args.out)}")


if __name__ == "__main__":
    main()
