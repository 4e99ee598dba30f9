"""Counters and raw writers for benchmarks/capacity.py.

- A private Redis server (its own port on 127.0.0.1, no persistence) whose INFO commandstats
  and INFO cpu count only this benchmark's traffic: the shared server's counters also count
  every other client.
- PostgreSQL counters of one database (pg_stat_database: commits, rows inserted/updated) and
  the CPU seconds of that database's server processes (/proc/<pid>/stat of its backends).
- Writers of epoch rows for the write-capacity table: bplab's own fenced population write
  (the path every worker takes), raw COPY and executemany into epoch_metrics, and empty
  fenced transactions (commits/s); each in its own process, 1 or 2 at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
EPOCH_COLUMNS = "run_id, epoch, loss, accuracy, val_loss, val_accuracy, max_error"


# --- processes ---------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (a worker and its pool)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ProcessLookupError):
                if os.getpgid(int(entry.name)) == pgid:
                    total += cpu_seconds(int(entry.name))
    return total


# --- Redis ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis(log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of our own on 127.0.0.1 (stopped by its pid at the end); its URL (DB 15)."""
    import redis

    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(log.parent)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/15"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        client.close()
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def redis_counters(url: str) -> dict[str, float]:
    """Commands executed (all kinds, our INFO calls excluded later) and CPU seconds used."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
    finally:
        client.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return {
        "commands": sum(n for k, n in calls.items() if k not in ("info", "client|setname")),
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        **{f"cmd_{k}": n for k, n in calls.items()},
    }


# --- PostgreSQL ------------------------------------------------------------------------------
def pg_counters(url: str) -> dict:
    """This database's size and epoch rows, and its backends' CPU seconds by pid. (Not
    pg_stat_database's commit counts: a backend publishes them up to 10 s late.)"""
    import psycopg

    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        rows = conn.execute("SELECT count(*) FROM epoch_metrics").fetchone()
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        ]
    assert size is not None and rows is not None
    return {
        "db_bytes": float(size[0]),
        "epoch_rows": float(rows[0]),
        "backend_cpu": {pid: cpu_seconds(pid) for pid in pids},
    }


def pg_delta(before: dict, after: dict) -> dict[str, float]:
    """after - before; backend CPU summed over backends (one that is new counts from 0)."""
    out = {k: after[k] - before[k] for k in after if k != "backend_cpu"}
    b = before["backend_cpu"]
    out["pg_cpu_s"] = sum(c - b.get(pid, 0.0) for pid, c in after["backend_cpu"].items())
    return out


# --- writers ----------------------------------------------------------------------------------
def _psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _rows(run_id: int, first: int, count: int) -> list[tuple]:
    return [(run_id, e, 1.0 / e, 0.75, None, None, 0.4) for e in range(first, first + count)]


def write_epoch_rows(
    method: str, url: str, txns: list[list[int]], first: int, rows: int, start=None
) -> tuple[float, float]:
    """Write ``rows`` epochs (from ``first``) of each run, one transaction per run list in
    ``txns``, each fenced (the runs' attempt-1 rows updated, as a worker's flush does);
    returns (wall seconds, this process's CPU seconds). method: bplab | copy | executemany
    | commit (the fence alone, no rows: the cost of a transaction)."""
    import psycopg

    fence = (
        "UPDATE runs SET heartbeat_at = statement_timestamp() WHERE id = ANY(%s)"
        " AND attempt = 1 AND status = 'running'"
    )
    insert = f"INSERT INTO epoch_metrics ({EPOCH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    insert += " ON CONFLICT (run_id, epoch) DO NOTHING"
    if method == "bplab":
        from service.db.bulk import insert_epoch_rows_fenced_many
        from service.db.session import session_scope

        keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "max_error")
        batches = [
            [
                (r, 1, [dict(zip(keys, t[1:], strict=True)) for t in _rows(r, first, rows)])
                for r in txn
            ]
            for txn in txns
        ]
        with session_scope(url) as s:
            s.connection()  # connected before the clock starts, as in a running worker
        if start is not None:
            start.wait()
        c, t = time.process_time(), time.perf_counter()
        for items in batches:
            with session_scope(url) as s:
                assert not insert_epoch_rows_fenced_many(s.connection(), items)
        return time.perf_counter() - t, time.process_time() - c
    data = [[row for r in txn for row in _rows(r, first, rows)] for txn in txns]
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        if start is not None:
            start.wait()
        c, t = time.process_time(), time.perf_counter()
        for txn, records in zip(txns, data, strict=True):
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(fence, (txn,))
                if method == "copy":
                    with cur.copy(f"COPY epoch_metrics ({EPOCH_COLUMNS}) FROM STDIN") as copy:
                        for record in records:
                            copy.write_row(record)
                elif method == "executemany":
                    cur.executemany(insert, records)
        return time.perf_counter() - t, time.process_time() - c


def concurrent_write(
    method: str, url: str, per_writer: list[list[list[int]]], first: int, rows: int
) -> dict[str, float]:
    """``len(per_writer)`` writer processes started together; rows/s and transactions/s."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = len(per_writer)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=ctx) as pool, ctx.Manager() as manager:
        list(pool.map(_warm, range(n)))
        start = manager.Barrier(n)
        futures = [
            pool.submit(write_epoch_rows, method, url, txns, first, rows, start)
            for txns in per_writer
        ]
        results = [f.result() for f in futures]
    wall = max(w for w, _ in results)
    txns = sum(len(t) for t in per_writer)
    total_rows = 0 if method == "commit" else sum(len(r) for t in per_writer for r in t) * rows
    return {
        "writers": n,
        "wall_s": wall,
        "rows_per_s": total_rows / wall,
        "txns_per_s": txns / wall,
        "client_cpu_s": sum(c for _, c in results),
    }


def _warm(_: int) -> None:
    import psycopg  # noqa: F401

    import service.db.bulk  # noqa: F401
    import service.db.session  # noqa: F401


def write_part(url: str, repeat: int) -> dict:
    """Rows/s of each method, 1 and 2 writers, taking turns; best (and all) of each."""
    from sqlalchemy import text

    from service.db import repository as repo
    from service.db.session import session_scope
    from service.spec import parse_spec

    config = dict(
        parse_spec({"name": "w", "dataset": "xor", "parameters": {"hidden": [2]}})
        .expand()[0]
        .config
    )
    per_pop = 64  # per writer: 20 transactions of 64 runs x 100 rows = 128,000 rows
    with session_scope(url) as s:
        sweep = repo.create_sweep(
            s,
            name="write",
            dataset="xor",
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=[{"config": config, "seed": k} for k in range(2560)],
        )
        ids = repo.run_ids(s, sweep)
        s.execute(
            text("UPDATE runs SET status = 'running', attempt = 1 WHERE sweep_id = :s"),
            {"s": sweep},
        )
    halves = [ids[:1280], ids[1280:]]
    shapes = {  # name -> (runs per transaction, rows per run)
        "64 runs x 100 rows": lambda h: (
            [h[i : i + per_pop] for i in range(0, 1280, per_pop)],
            100,
        ),
        "1 run x 1000 rows": lambda h: ([[r] for r in h[:128]], 1000),
    }
    results: dict[str, list[dict]] = {}
    first = 1
    for turn in range(repeat):
        for tshape, cut in shapes.items():
            for method in ("bplab", "copy", "executemany", "commit"):
                for writers in (1, 2):
                    per_writer = []
                    for h in halves[:writers]:
                        txns, rows = cut(h)
                        per_writer.append(txns)
                    res = concurrent_write(method, url, per_writer, first, rows)
                    first += rows
                    res["load_before"] = os.getloadavg()[0]
                    results.setdefault(f"{method} | {tshape} | {writers}", []).append(res)
        print(f"  write turn {turn} done (load {os.getloadavg()[0]:.1f})", flush=True)
    table = {
        k: {
            "best_rows_per_s": max(r["rows_per_s"] for r in v),
            "best_txns_per_s": max(r["txns_per_s"] for r in v),
            "median_rows_per_s": statistics.median(r["rows_per_s"] for r in v),
            "median_txns_per_s": statistics.median(r["txns_per_s"] for r in v),
            "trials": v,
        }
        for k, v in results.items()
    }
    return {
        "table": table,
        "bplab_rows_per_s": table["bplab | 64 runs x 100 rows | 2"]["best_rows_per_s"],
        "commits_per_s": table["commit | 1 run x 1000 rows | 2"]["best_txns_per_s"],
    }
