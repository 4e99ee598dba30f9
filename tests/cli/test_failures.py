"""Issue 18, items 2 and 3 and its last paragraph: every command against an unreachable
database, a malformed or unknown URL, and a locked SQLite file, through the real CLI.

Whatever is wrong, a command prints one line (with the password masked) and exits with a
documented code: 2 for a database or broker the user named wrongly, 1 for a SQLite file that
another process kept locked past the busy timeout, 0 for a reader, which answers while a
sweep writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import cli
from service.db.session import dispose_engines

SPEC = "name: tiny\ndataset: xor\nseeds: 2\nparameters: {learning_rate: [0.5, 2.0], epochs: 20}\n"
BROKER = "redis://127.0.0.1:6379/14"  # never reached: the database fails first


def commands(tmp: Path) -> dict[str, list[str]]:
    """Every command of the CLI with arguments that succeed on the sweep the fixture made."""
    spec = str(tmp / "tiny.yaml")
    return {
        "datasets": ["datasets"],
        "db current": ["db", "current"],
        "db upgrade": ["db", "upgrade"],
        "sweep plan": ["sweep", "plan", spec],
        "sweep run": ["sweep", "run", spec, "--workers", "1"],
        "sweep list": ["sweep", "list"],
        "sweep show": ["sweep", "show", "1"],
        "sweep status": ["sweep", "status", "1"],
        "sweep watch": ["sweep", "watch", "1", "--timeout", "5"],
        "sweep resume": ["sweep", "resume", "1", "--workers", "1"],
        "sweep cancel": ["sweep", "cancel", "1"],
        "sweep retry": ["sweep", "retry", "1", "--workers", "1"],
        "sweep recover": ["sweep", "recover", "1"],
        "sweep submit": ["sweep", "submit", spec],
        "sweep republish": ["sweep", "republish", "1"],
        "runs": ["runs", "1"],
        "run show": ["run", "show", "1"],
        "run curve": ["run", "curve", "1"],
        "run weights": ["run", "weights", "1", "-o", str(tmp / "w.npz")],
        "results": ["results", "1"],
        "compare": ["compare", "1", "--a", "learning_rate=0.5", "--b", "learning_rate=2.0"],
        "plot": ["plot", "1", "-o", str(tmp / "p.png")],
        "export": ["export", "1", "-o", str(tmp / "e.csv")],
        "inspect": ["inspect", "1"],
        "sql": ["sql", "SELECT COUNT(*) AS n FROM runs"],
        # issue 19's (sweep delete: tests/cli/test_manage_sweeps.py)
        "best": ["best", "1"],
        "sweep extend": ["sweep", "extend", "1", "--seeds", "3", "--workers", "1"],
        "sweep rename": ["sweep", "rename", "1", "tiny"],
        "sweep tag": ["sweep", "tag", "1", "owner=ana"],
        "sweep note": ["sweep", "note", "1", "a note"],
        "worker": ["worker"],
    }


NO_DATABASE = {"datasets", "sweep plan"}
NEEDS_BROKER = {"sweep submit", "sweep republish", "worker"}
READERS = {
    "db current",
    "sweep list",
    "sweep show",
    "sweep status",
    "sweep watch",
    "runs",
    "run show",
    "run curve",
    "run weights",
    "results",
    "compare",
    "plot",
    "export",
    "inspect",
    "sql",
    "best",
}


def invoke(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, args, env=env)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return result.exit_code, lines


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A SQLite database holding one finished 4-run sweep (id 1)."""
    tmp = tmp_path_factory.mktemp("failures")
    (tmp / "tiny.yaml").write_text(SPEC)
    url = f"sqlite:///{tmp / 'bplab.db'}"
    code, lines = invoke(
        ["sweep", "run", str(tmp / "tiny.yaml"), "--workers", "1"],
        {"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": ""},
    )
    assert code == 0, lines
    yield tmp, url
    dispose_engines(url)


UNREACHABLE = "postgresql://bplab:hunter2@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(
    "url",
    [
        UNREACHABLE,
        "postgresql://bplab:hunter2@127.0.0.1:notaport/x",
        "foo://bplab:hunter2@host/x",
        "not a url hunter2",
    ],
    ids=["unreachable", "bad-port", "unknown-scheme", "not-a-url"],
)
def test_every_command_on_a_bad_database_url_is_one_line_exit_2(
    recorded: tuple[Path, str], url: str
) -> None:
    tmp, _ = recorded
    for name, args in commands(tmp).items():
        if name in NO_DATABASE:
            continue
        broker = BROKER if name in NEEDS_BROKER else ""
        code, lines = invoke(args, {"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": broker})
        assert code == 2, (name, lines)
        assert len(lines) == 1, (name, lines)
        assert "hunter2" not in lines[0], (name, lines)


def test_every_command_against_a_locked_sqlite_file(recorded: tuple[Path, str]) -> None:
    """Readers answer while another process holds the write lock; writers wait the busy
    timeout (shortened here) and say so in one line, exit 1. Nothing else changes."""
    tmp, url = recorded
    env = {"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": "", "BPLAB_SQLITE_BUSY_TIMEOUT": "0.3"}
    dispose_engines(url)  # every command opens the file afresh, as a new process would
    holder = sqlite3.connect(tmp / "bplab.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a sweep's writer holds while it records
    try:
        for name, args in commands(tmp).items():
            broker = BROKER if name in ("worker", "sweep submit") else ""
            code, lines = invoke(args, {**env, "BPLAB_BROKER_URL": broker})
            dispose_engines(url)
            if name in READERS or name in NO_DATABASE:
                assert code == 0, (name, lines)
            elif name == "sweep submit":  # refused before the database is touched
                assert code == 2 and "SQLite" in lines[0], (name, lines)
            elif name == "sweep republish":  # no broker configured: refused, exit 1
                assert code == 1 and len(lines) == 1, (name, lines)
            else:
                assert code == 1, (name, lines)
                assert len(lines) == 1 and "is locked" in lines[0], (name, lines)
    finally:
        holder.rollback()
        holder.close()


def test_malformed_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    cases = {
        f"sqlite:///{tmp_path / 'notes.db'}": "is not a SQLite database",
        f"sqlite:///{tmp_path / 'missing' / 'b.db'}": "does not exist",
    }
    for url, expected in cases.items():
        for args in (["sweep", "list"], ["db", "upgrade"], ["results", "1"]):
            code, lines = invoke(args, {"BPLAB_DATABASE_URL": url})
            if args == ["sweep", "list"] and "missing" in url:
                assert code == 0 and "no sweeps" in lines[0], lines
                continue
            assert code == 2 and len(lines) == 1 and expected in lines[0], (args, lines)
    assert not (tmp_path / "missing").exists()


def test_unmigrated_postgresql_is_one_line(empty_pg_url: str) -> None:
    for args in (["sweep", "list"], ["results", "1"], ["runs", "1"]):
        code, lines = invoke(args, {"BPLAB_DATABASE_URL": empty_pg_url})
        assert code == 2 and len(lines) == 1, lines
        assert "bplab db upgrade" in lines[0]


def test_missing_postgresql_database_is_one_line(empty_pg_url: str) -> None:
    url = empty_pg_url.rsplit("/", 1)[0] + "/bplab_no_such_database"
    code, lines = invoke(["sweep", "list"], {"BPLAB_DATABASE_URL": url})
    assert code == 2 and len(lines) == 1, lines
    assert 'database "bplab_no_such_database" does not exist' in lines[0]


def test_readers_never_create_the_database_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bplab.db'}"
    env = {"BPLAB_DATABASE_URL": url}
    code, lines = invoke(["db", "current"], env)
    assert code == 0 and lines[0].startswith("none (no database at"), lines
    for args in (["results", "1"], ["runs", "1"], ["run", "show", "1"], ["sql", "SELECT 1"]):
        code, lines = invoke(args, env)
        assert code == 2 and len(lines) == 1 and "no database at" in lines[0], (args, lines)
    code, lines = invoke(["sweep", "list", "--format", "json"], env)
    assert code == 0 and lines == ["[]"], lines
    assert list(tmp_path.iterdir()) == []
