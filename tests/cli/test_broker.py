"""Issue 18, item 2: broker URLs that cannot work are one line and exit 2 before anything is
written; a SQLite database is refused for remote workers; `sweep watch` says when no worker
consumes the queue. Real Redis (db 14, a queue of this test's own) and real PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from service.cli import cli

REDIS_DB = 14
SPEC = "name: tiny\ndataset: xor\nparameters: {epochs: 5}\n"


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def sweep_count(url: str) -> int:
    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM sweeps")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue nobody consumes; its keys are removed afterwards (the Redis is shared)."""
    name = f"bplab-i18-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis(db=REDIS_DB)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("redis://:hunter2@127.0.0.1:1/0", "cannot reach the broker at redis://:***@127.0.0.1:1/0"),
        ("foo://:hunter2@host/0", "unknown broker scheme 'foo'"),
        ("redis://:hunter2@host:port/0", "BPLAB_BROKER_URL redis://:***@host:port/0"),
        ("hunter2", "is not a URL"),
    ],
    ids=["unreachable", "unknown-scheme", "bad-port", "not-a-url"],
)
def test_bad_broker_is_one_line_exit_2_nothing_written(
    pg_database: str, tmp_path, broker: str, expected: str
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    before = sweep_count(pg_database)
    for args in (["sweep", "submit", str(spec)], ["sweep", "run", str(spec)]):
        code, lines = invoke(args, {"BPLAB_DATABASE_URL": pg_database, "BPLAB_BROKER_URL": broker})
        assert code == 2 and len(lines) == 1, lines
        assert expected in lines[0] and "hunter2" not in lines[0], lines
    assert sweep_count(pg_database) == before


def test_submit_with_sqlite_is_refused(tmp_path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    env = {
        "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'bplab.db'}",
        "BPLAB_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
    }
    for args in (["sweep", "submit", str(spec)], ["sweep", "run", str(spec)]):
        code, lines = invoke(args, env)
        assert code == 2 and len(lines) == 1, lines
        assert "cannot reach that file" in lines[0], lines
    assert not (tmp_path / "bplab.db").exists()


@pytest.mark.postgres
def test_watch_says_when_no_worker_consumes_the_queue(
    pg_database: str, tmp_path, queue: str
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    env = {
        "BPLAB_DATABASE_URL": pg_database,
        "BPLAB_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "BPLAB_QUEUE": queue,
    }
    code, lines = invoke(["sweep", "submit", str(spec)], env)
    assert code == 0, lines
    sweep_id = next(line for line in lines if line.isdigit())  # stdout's id, beside stderr
    code, lines = invoke(["sweep", "watch", sweep_id, "--timeout", "2", "--interval", "0.2"], env)
    assert code == 1, lines
    note = [line for line in lines if "no worker consumes" in line]
    assert note and f"queue '{queue}'" in note[0], lines
    assert "not finished after 2 s" in lines[-1], lines
