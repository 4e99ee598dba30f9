"""The compose stack started natively: real PostgreSQL, Redis and `bplab worker` processes.

Isolation from other test runs on the same servers: a throwaway PostgreSQL database, a Redis DB
number reserved for these tests and a queue name unique to this run. Only processes started here
are stopped, by their pid (each worker leads its own session, so its pool children go with it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.distributed.bplab_cli import BPLAB
from tests.distributed.compose import command_argv, interpolate, load_compose

PG_ADMIN_URL = os.environ.get(
    "BPLAB_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_DB = 11  # reserved for tests/distributed


def compose_command(service: str) -> list[str]:
    """The service's command from docker-compose.yml, `bplab` mapped to this test's CLI."""
    argv = command_argv(interpolate(load_compose(), {})["services"][service])
    assert argv and argv[0] == "bplab", f"{service}: expected a bplab command, got {argv}"
    return [*BPLAB, *argv[1:]]


def admin_execute(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    except Exception as exc:
        raise RuntimeError(
            f"PostgreSQL at {make_url(PG_ADMIN_URL)!r} is required for tests/distributed: {exc}"
        ) from exc
    finally:
        engine.dispose()


def create_database() -> str:
    name = f"bplab_dist_{uuid.uuid4().hex[:10]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from service.db.session import dispose_engines

    dispose_engines(url)
    admin_execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    tmp: Path
    database_url: str
    queue: str = field(default_factory=lambda: f"bplab_test_{uuid.uuid4().hex[:10]}")
    workers: list[Worker] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "BPLAB_DATABASE_URL": self.database_url,
            "BPLAB_BROKER_URL": self.broker_url,
            "BPLAB_QUEUE": self.queue,
            # Two workers of one process each on this 2-core machine.
            "BPLAB_WORKER_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.update(extra)
        return env

    def bplab(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
        return subprocess.run(
            [*BPLAB, *args],
            env=env or self.env(),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.env(), cwd=self.tmp, capture_output=True, text=True, timeout=timeout
        )

    def start_worker(self, argv: list[str]) -> Worker:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                env=self.env(),
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(proc, log)
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: Worker, timeout: float = 90.0) -> None:
        wait_for(
            lambda: " ready." in worker.text() or worker.proc.poll() is not None,
            timeout,
            f"worker {worker.proc.pid} ready",
        )
        assert worker.proc.poll() is None, f"worker exited early:\n{worker.text()}"

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.proc.pid, signal.SIGKILL)  # its own session: only its processes
                worker.proc.wait(timeout=10)
        # A pool child that outlived its parent would still be in the worker's process group.
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, signal.SIGKILL)

    def redis(self) -> redis.Redis:
        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)

    def clean_redis(self) -> None:
        client = self.redis()
        # The queue name is unique to this run, so every key that contains it is ours.
        keys = list(client.scan_iter(match=f"*{self.queue}*"))
        if keys:
            client.delete(*keys)
        client.close()

    def worker_logs(self) -> str:
        return "\n".join(w.text() for w in self.workers)


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def migrated_stack(tmp: Path, workers: int = 2) -> Iterator[Stack]:
    """A fresh PostgreSQL database migrated as compose's migrate service does, and ``workers``
    real bplab workers started as its worker service is, all stopped and removed at the end."""
    url = create_database()
    s = Stack(tmp=tmp, database_url=url)
    try:
        migrate = s.run(compose_command("migrate"))
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        for _ in range(workers):
            s.start_worker(compose_command("worker"))
        for worker in s.workers:
            s.wait_ready(worker)
        yield s
    finally:
        try:
            s.stop_workers()
        finally:
            s.clean_redis()
            drop_database(url)
