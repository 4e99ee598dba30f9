"""The model and the printed tables of benchmarks/capacity.py.

The model is a closed form over measured per-run costs: how many worker processes each
server can feed before it runs out (of CPU, or of the row and commit rates measured here).
"""

from __future__ import annotations

import math

import numpy as np


def model(
    rows: list[dict], db_cores: list[int], write: dict | None, redis_cost: dict | None
) -> list[dict]:
    """Worker processes at which each server saturates, per shape.

    A worker process spends w CPU seconds per run (measured: its processes' CPU over a sweep
    through Celery / runs), so N processes, each on a core of its own, ask for N/w runs/s.
    - PostgreSQL CPU: its backends spent p CPU seconds per run (measured the same way); with C
      cores as fast as this machine's, they saturate at N = C w / p.
    - PostgreSQL here: this machine's measured rates of bplab's writer (epoch rows/s, 2
      writers) and of fenced commits/s: N = rate w / (rows or commits per run).
    - Redis: one thread; CPU per task measured with no-op tasks at full speed (t), tasks per
      run counted (one LPUSH per task): N = w / (t tasks_per_run).
    Ignored: lock and WAL-flush queueing that sets in before saturation, network latency
    (workers here talk to servers on the same host), autovacuum and checkpoints.
    """
    out = []
    for r in rows:
        w = r["worker_cpu_per_run_s"]
        m: dict = {"shape": r["shape"], "worker_runs_per_s": 1 / w}
        for c in db_cores:
            m[f"n_pg_cpu_{c}"] = c * w / r["pg_cpu_per_run_s"]
        if write:
            rows_per_run = r["epoch_rows_per_run"]
            m["n_rows_here"] = write["bplab_rows_per_s"] * w / rows_per_run
            m["n_commits_here"] = write["commits_per_s"] * w / r["commits_per_run"]
        if redis_cost:
            per_run = r["redis_tasks_per_run"] * redis_cost["redis_cpu_per_task_s"]
            m["n_redis"] = w / per_run
        out.append(m)
    return out


def pg_cost_fit(rows: list[dict]) -> tuple[float, float] | None:
    """PostgreSQL CPU per run ~ a x epoch rows + b x statements (least squares over the shapes):
    (a, b) in seconds, what a row and a statement cost the server, for shapes not measured."""
    if len(rows) < 2:
        return None
    A = np.array([[r["epoch_rows_per_run"], r["statements_per_run"]] for r in rows])
    y = np.array([r["pg_cpu_per_run_s"] for r in rows])
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(a), float(b)


def _fmt(value: float | None, width: int, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}s}"
    return f"{value:{width}.{digits}f}"


def print_celery(summary: list[dict]) -> None:
    print("\nruns/s through Celery, best of the turns (median), and costs per run (medians):")
    print("  wCPU = worker processes' CPU ms, pgCPU = PostgreSQL backends' CPU ms, stmts and")
    print("  commits counted in the executor, rows = epoch rows, bytes = database growth,")
    print("  Redis = commands")
    head = f"{'shape':24s} {'1 process':>12s} {'2 processes':>12s} {'x':>5s} {'wCPU':>6s}"
    print(f"{head} {'pgCPU':>6s} {'stmts':>6s} {'commits':>7s} {'rows':>5s} {'bytes':>6s} Redis")
    for r in summary:
        one, two = r["runs_per_s_1"], r["runs_per_s_2"]
        print(
            f"{r['shape']:24s} {one:5.0f} ({r['runs_per_s_1_median']:4.0f}) "
            f"{two:5.0f} ({r['runs_per_s_2_median']:4.0f}) {two / one:5.2f} "
            f"{r['worker_cpu_per_run_s'] * 1e3:6.2f} {r['pg_cpu_per_run_s'] * 1e3:6.2f} "
            f"{r['statements_per_run']:6.2f} {r['commits_per_run']:7.3f} "
            f"{r['epoch_rows_per_run']:5.0f} {r['db_bytes_per_run']:6.0f} "
            f"{r['redis_commands_per_run']:5.2f}"
        )


def print_write(write: dict) -> None:
    print("\nPostgreSQL write capacity, best of the turns (median): epoch rows/s, transactions/s")
    for key, v in write["table"].items():
        print(
            f"  {key:40s} {v['best_rows_per_s']:9.0f} rows/s ({v['median_rows_per_s']:8.0f})"
            f" {v['best_txns_per_s']:7.0f} txn/s ({v['median_txns_per_s']:6.0f})"
        )


def print_tables(
    summary: list[dict],
    write: dict | None,
    models: list[dict],
    cores: list[int],
    redis_cost: dict | None,
) -> None:
    if summary:
        print_celery(summary)
    if write:
        print_write(write)
    if redis_cost:
        print(
            f"\nRedis, no-op tasks at full speed: {redis_cost['tasks_per_s']:.0f} tasks/s, "
            f"{redis_cost['redis_cpu_per_task_s'] * 1e6:.1f} us of Redis CPU per task "
            f"(Redis busy {redis_cost['redis_busy_fraction']:.0%} of the time), "
            f"{redis_cost['commands_per_task']:.1f} commands per task (with the count's own)"
        )
    fit = pg_cost_fit(summary)
    if fit:
        print(
            f"PostgreSQL CPU per run ~ {fit[0] * 1e6:.2f} us x epoch rows + "
            f"{fit[1] * 1e6:.0f} us x statements (least squares over the shapes)"
        )
    if not models:
        return
    print("\nmodel: worker processes at which a server saturates (from the measured costs;")
    print("  PG Nc = PostgreSQL CPU with N cores; rows/commits = this machine's write rates)")
    cells = " ".join(f"{'PG ' + str(c) + 'c':>7s}" for c in cores)
    print(f"{'shape':24s} {'runs/s/proc':>11s} {cells} {'rows':>7s} {'commits':>7s} {'Redis':>7s}")
    for m in models:
        pg = " ".join(_fmt(m[f"n_pg_cpu_{c}"], 7) for c in cores)
        print(
            f"{m['shape']:24s} {m['worker_runs_per_s']:11.0f} {pg} "
            f"{_fmt(m.get('n_rows_here'), 7)} {_fmt(m.get('n_commits_here'), 7)} "
            f"{_fmt(m.get('n_redis'), 7, 0)}"
        )
