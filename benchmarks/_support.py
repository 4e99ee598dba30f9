"""Shared plumbing of the service benchmarks: throwaway databases, queues, child processes.

Everything a benchmark creates it removes again: its own PostgreSQL database (dropped at the
end), its own Redis queue name (and the keys of its queue), and only the processes it started
(stopped by their process group id, never by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = os.environ.get(
    "BPLAB_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BPLAB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def fix_sys_path() -> None:
    """Run as a script, this directory comes first on sys.path and benchmarks/engine.py
    would shadow the engine package: look from the repository root instead."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, str(ROOT))


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@contextlib.contextmanager
def pg_database(prefix: str = "bplab_bench", migrate_schema: bool = True) -> Iterator[str]:
    """A new (migrated) PostgreSQL database for this benchmark; dropped afterwards."""
    from sqlalchemy.engine import make_url

    from service.db import migrate
    from service.db.session import dispose_engines, make_engine

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate_schema:
            engine = make_engine(url)
            try:
                migrate.upgrade_engine(engine)
            finally:
                engine.dispose()
        yield url
    finally:
        dispose_engines(url)
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_size(url: str) -> int:
    """Bytes on disk of the database at ``url`` (pg_database_size, or the SQLite files)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        base = Path(u.database or "")
        return sum(p.stat().st_size for p in base.parent.glob(base.name + "*") if p.is_file())
    from service.db.session import get_engine

    with get_engine(url).connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())


def unique_queue(prefix: str = "bplab-bench") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def clear_queue(queue: str, redis_url: str = REDIS_URL) -> None:
    """Delete the Redis keys of one queue (and its kombu bindings), nothing else."""
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        keys = [queue, *(f"{queue}\x06\x16{p}" for p in range(10))]
        r.delete(*keys)
        r.srem(f"_kombu.binding.{queue}", *r.smembers(f"_kombu.binding.{queue}") or [b""])
        # kombu 5.5 also keeps the queue's binding in a set of its own, left behind otherwise
        r.delete(f"_kombu.binding_permanent.{queue}")
    finally:
        r.close()


class Children:
    """Processes started by a benchmark, each in its own process group; stopped by id."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        fh = open(log, "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        proc._bench_log = fh  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc._bench_log.close()  # type: ignore[attr-defined]
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def wait_ready(log: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until a Celery worker started with its output to ``log`` says it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early; see {log}:\n{log.read_text()[-2000:]}")
        if "ready." in log.read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"worker not ready after {timeout} s; see {log}")


def wait_finished(url: str, sweep_id: int, timeout: float) -> dict[str, int]:
    """Until no run of the sweep is queued or running: its status counts."""
    from service.db import repository as repo
    from service.db.session import session_scope

    deadline = time.monotonic() + timeout
    while True:
        with session_scope(url) as s:
            counts = repo.status_counts(s, sweep_id)
        if counts.get("queued", 0) + counts.get("running", 0) == 0 and sum(counts.values()):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"sweep {sweep_id} not finished after {timeout} s: {counts}")
        time.sleep(0.02)


def session_cpu_seconds(session_id: int) -> float:
    """User + system CPU seconds of the live processes of one session (a child started with
    start_new_session: its pid), from /proc. A Celery worker's pool processes stay alive
    between tasks, so the difference over an interval is what the worker spent in it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name (field 2) may hold spaces: split after its closing parenthesis
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[3]) == session_id:  # fields[3] is field 6 of proc(5), the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def bplab_cmd() -> list[str]:
    return [sys.executable, "-m", "service.cli"]


def start_bplab_worker(
    children: Children, log: Path, url: str, queue: str, concurrency: int = 2
) -> subprocess.Popen:
    """`bplab worker -c N` consuming ``queue`` for the database at ``url`` (not yet ready)."""
    env = child_env(BPLAB_BROKER_URL=REDIS_URL, BPLAB_DATABASE_URL=url, BPLAB_QUEUE=queue)
    args = [*bplab_cmd(), "worker", "-c", str(concurrency), "-Q", queue, "-l", "INFO"]
    return children.start(args, env, log)


def meta() -> dict:
    import numpy as np

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # the machine is shared: a load near the number of cores means other work competed
        "load_average_1_5_15": list(os.getloadavg()),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_json(name: str, payload: dict, out: str | None = None) -> Path:
    path = Path(out) if out else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta(), **payload}, indent=2))
    return path
