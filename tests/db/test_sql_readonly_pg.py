"""`bplab sql` on PostgreSQL is read-only by construction, even as a superuser (issue 24).

The suite's database URL logs in as `postgres`, a superuser: exactly the case where a READ ONLY
transaction alone let COPY ... TO PROGRAM, pg_read_file and friends through. Every statement
here goes through the real CLI and the real server; the role bplab_reader is the one migration
0005 made when the session's database was migrated (roles are cluster-wide, so it is shared
and never dropped here; the roles these tests make have random names and are dropped).
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from dbhelpers import full_config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from service.config import Settings
from service.db import migrate
from service.db import repository as repo
from service.db.session import dispose_engines, make_engine, session_scope
from service.sqlconsole import reader_url
from tests.cli.conftest import BPLAB, Bplab
from tests.conftest import PG_ADMIN_URL, _truncate_all, create_pg_database, drop_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

READER = "bplab_reader"
OBJECTS = {
    "sweeps",
    "runs",
    "epoch_metrics",
    "run_weights",
    "checkpoints",
    "run_summary",
    "config_summary",
    "search_trials",
    "search_leases",
    "sweep_tags",  # 0007_management
    "pruned_configs",  # 0008_pruning
}
NO_SQL_SETTINGS = {"BPLAB_SQL_ROLE": None, "BPLAB_SQL_PASSWORD": None, "BPLAB_SQL_URL": None}


def _admin(sql: str, url: str = PG_ADMIN_URL) -> list[tuple]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _bplab(url: str, tmp_path: Path, **env: str | None) -> Bplab:
    bplab = Bplab(url, tmp_path)
    bplab.env.update({**NO_SQL_SETTINGS, **env})  # type: ignore[arg-type]
    return bplab


def _one_line_refusal(bplab: Bplab, statement: str) -> str:
    output = bplab("sql", statement, expect=2).output.strip()
    assert len(output.splitlines()) == 1 and output.startswith("Error: sql: "), output
    return output


@pytest.fixture
def su_bplab(pg_database: str, tmp_path: Path) -> Iterator[Bplab]:
    """bplab on the session's database as the superuser postgres, with a sweep of 3 runs."""
    _truncate_all(pg_database)
    with session_scope(pg_database) as s:
        repo.create_sweep(
            s,
            name="t",
            dataset="xor",
            method="grid",
            spec={"dataset": "xor", "parameters": {}},
            swept=["learning_rate"],
            backend="local",
            runs=[{"config": full_config(), "seed": seed} for seed in range(3)],
        )
    assert _admin("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", pg_database) == [
        (True,)
    ]
    yield _bplab(pg_database, tmp_path)
    dispose_engines(pg_database)


@pytest.fixture
def temp_role() -> Iterator[Callable[[str], str]]:
    """temp_role(attributes) -> the name of a new role; dropped at the end (after its databases,
    which the test drops itself: a role with privileges in a database cannot be dropped)."""
    made: list[str] = []

    def make(attributes: str = "LOGIN") -> str:
        name = f"bplab_t_{uuid.uuid4().hex[:10]}"
        _admin(f"CREATE ROLE {name} {attributes}")
        made.append(name)
        return name

    yield make
    for name in made:
        _admin(f"DROP ROLE IF EXISTS {name}")


def test_a_superuser_url_reads_as_the_reader_role(su_bplab: Bplab) -> None:
    assert su_bplab.json("sql", "SELECT current_user AS u, session_user AS s") == [
        {"u": READER, "s": READER}
    ]
    assert su_bplab.json("sql", "SELECT COUNT(*) AS n FROM runs") == [{"n": 3}]
    rows = su_bplab.json("sql", "SELECT seed, status FROM run_summary ORDER BY seed")
    assert rows == [{"seed": s, "status": "queued"} for s in range(3)]
    assert su_bplab.json("sql", "SELECT COUNT(*) AS n FROM config_summary") == [{"n": 1}]


def test_every_superuser_escape_is_refused(su_bplab: Bplab) -> None:
    marker = Path(f"/tmp/bplab_sql_escape_{uuid.uuid4().hex}")
    copied = Path(f"{marker}.csv")
    # A superuser connection the statement tries to kill; it must survive.
    victim = create_engine(PG_ADMIN_URL, poolclass=NullPool)
    with victim.connect() as held:
        pid = held.execute(text("SELECT pg_backend_pid()")).scalar()
        escapes = [
            f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
            f"COPY (SELECT 1) TO '{copied}'",
            f"COPY runs FROM PROGRAM 'touch {marker}'",
            "SELECT pg_read_file('/etc/hostname')",
            "SELECT pg_ls_dir('.')",
            f"SELECT pg_terminate_backend({pid})",
            f"SELECT pg_cancel_backend({pid})",
            "SELECT pg_reload_conf()",
            f"SELECT lo_export(0, '{copied}')",
            # The escape that makes SET ROLE on a superuser session useless: set it back.
            "SELECT set_config('role', 'postgres', false),"
            " query_to_xml('select pg_read_file(''/etc/hostname'')', true, true, '')",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "ALTER ROLE bplab_reader SUPERUSER",
            "CREATE ROLE bplab_t_intruder",
            "SELECT * FROM alembic_version",  # not one of bplab's result tables
            "INSERT INTO sweeps (name, dataset, method, spec, swept, n_runs, backend)"
            " VALUES ('x', 'xor', 'grid', '{}', '[]', 0, 'local')",
            "DELETE FROM runs",
            "DROP TABLE run_weights",
            "COMMIT; DELETE FROM runs",
        ]
        for statement in escapes:
            _one_line_refusal(su_bplab, statement)
        assert held.execute(text("SELECT 1")).scalar() == 1  # not terminated
    victim.dispose()
    assert not marker.exists() and not copied.exists()
    # Terminating its own session only ends the command with an error.
    _one_line_refusal(su_bplab, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert su_bplab.json("sql", "SELECT COUNT(*) AS n FROM runs") == [{"n": 3}]
    assert su_bplab.json("sql", "SELECT COUNT(*) AS n FROM sweeps") == [{"n": 1}]
    assert _admin("SELECT rolsuper FROM pg_roles WHERE rolname = 'bplab_reader'") == [(False,)]


def test_the_reader_role_may_only_select_bplab_objects(pg_database: str) -> None:
    (attrs,) = _admin(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin, rolreplication,"
        f" rolbypassrls FROM pg_roles WHERE rolname = '{READER}'"
    )
    assert attrs == (False, False, False, False, True, False, False)
    member_of = _admin(
        "SELECT m.roleid FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
        f" WHERE r.rolname = '{READER}'"
    )
    assert member_of == []
    readable = _admin(
        f"SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')"
        f" AND c.relnamespace = 'public'::regnamespace"
        f" AND has_table_privilege('{READER}', c.oid, 'SELECT')",
        pg_database,
    )
    assert {r[0] for r in readable} == OBJECTS
    others = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
    for obj in OBJECTS:
        for privilege in others.split(", "):
            (row,) = _admin(
                f"SELECT has_table_privilege('{READER}', '{obj}', '{privilege}')", pg_database
            )
            assert row == (False,), (obj, privilege)
    grants = _admin(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
        f" WHERE grantee = '{READER}'",
        pg_database,
    )
    assert sorted(grants) == sorted((o, "SELECT") for o in OBJECTS)


def test_downgrade_revokes_and_upgrade_grants_again(empty_pg_url: str) -> None:
    engine = make_engine(empty_pg_url)
    readable = "SELECT has_table_privilege('bplab_reader', 'runs', 'SELECT')"
    try:
        migrate.upgrade_engine(engine)
        migrate.upgrade_engine(engine)  # nothing to do the second time
        assert _admin(readable, empty_pg_url) == [(True,)]
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(connection=conn), "0004")
        assert _admin(readable, empty_pg_url) == [(False,)]
        assert _admin(f"SELECT 1 FROM pg_roles WHERE rolname = '{READER}'") == [(1,)]  # kept
        migrate.upgrade_engine(engine)
        assert _admin(readable, empty_pg_url) == [(True,)]
    finally:
        engine.dispose()


def test_databases_migrated_at_once_share_one_new_role(temp_role, tmp_path: Path) -> None:
    # Processes, as on a real cluster (and Alembic's context is one per process).
    role = temp_role("NOLOGIN")
    _admin(f"DROP ROLE {role}")  # only its name, and its cleanup: the migrations create it
    urls = [create_pg_database("bplab_test_race") for _ in range(4)]
    try:
        procs = [
            subprocess.Popen(
                [*BPLAB, "db", "upgrade"],
                env={**os.environ, "BPLAB_DATABASE_URL": url, "BPLAB_SQL_ROLE": role},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for url in urls
        ]
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out
        for url in urls:
            assert _admin(f"SELECT has_table_privilege('{role}', 'runs', 'SELECT')", url) == [
                (True,)
            ]
    finally:
        for url in urls:
            drop_pg_database(url)


def test_superuser_with_no_reader_role_is_refused_in_one_line(su_bplab: Bplab) -> None:
    su_bplab.env["BPLAB_SQL_ROLE"] = f"bplab_t_missing_{uuid.uuid4().hex[:8]}"
    output = _one_line_refusal(su_bplab, "SELECT 1")
    assert "superuser 'postgres'" in output and "does not exist" in output
    assert "bplab db upgrade" in output and "BPLAB_SQL_URL" in output


def test_a_privileged_sql_url_is_refused(su_bplab: Bplab, temp_role) -> None:
    su_bplab.env["BPLAB_SQL_URL"] = su_bplab.url  # the superuser itself
    assert "which is or may become 'postgres'" in _one_line_refusal(su_bplab, "SELECT 1")
    # Not a superuser, but a member of a role that reads the server's files.
    reads_files = temp_role("LOGIN NOINHERIT IN ROLE pg_read_server_files")
    su_bplab.env["BPLAB_SQL_URL"] = (
        make_url(su_bplab.url).set(username=reads_files).render_as_string(False)
    )
    assert "'pg_read_server_files'" in _one_line_refusal(su_bplab, "SELECT 1")
    su_bplab.env["BPLAB_SQL_URL"] = (
        make_url(su_bplab.url).set(username="bplab_t_nobody").render_as_string(False)
    )
    assert "cannot connect with BPLAB_SQL_URL" in _one_line_refusal(su_bplab, "SELECT 1")
    su_bplab.env["BPLAB_SQL_URL"] = (
        make_url(su_bplab.url).set(username=READER).render_as_string(False)
    )
    assert su_bplab.json("sql", "SELECT current_user AS u") == [{"u": READER}]


def test_an_app_user_that_may_not_create_roles(
    temp_role, tmp_path: Path, monkeypatch, caplog
) -> None:
    """The migration warns and goes on; bplab sql falls back to this non-superuser until an
    administrator makes the role, which the next migration of a database then grants to."""
    app, reader = temp_role("LOGIN NOSUPERUSER NOCREATEROLE"), temp_role("NOLOGIN")
    _admin(f"DROP ROLE {reader}")  # a name nobody has made yet
    monkeypatch.setenv("BPLAB_SQL_ROLE", reader)
    first, second = (create_pg_database("bplab_test_app") for _ in range(2))
    try:
        for url in (first, second):
            _admin(f'ALTER DATABASE "{make_url(url).database}" OWNER TO {app}')
        as_app = [make_url(u).set(username=app).render_as_string(False) for u in (first, second)]
        engine = make_engine(as_app[0])
        with caplog.at_level(logging.WARNING, logger="bplab.migrations"):
            migrate.upgrade_engine(engine)
        engine.dispose()
        assert "may not create roles" in caplog.text and f"CREATE ROLE {reader}" in caplog.text
        assert _admin(f"SELECT 1 FROM pg_roles WHERE rolname = '{reader}'") == []
        bplab = _bplab(as_app[0], tmp_path, BPLAB_SQL_ROLE=reader)
        assert bplab.json("sql", "SELECT current_user AS u") == [{"u": app}]
        _one_line_refusal(bplab, "DELETE FROM runs")  # still READ ONLY
        _admin(f"CREATE ROLE {reader} LOGIN NOINHERIT")
        engine = make_engine(as_app[1])
        migrate.upgrade_engine(engine)
        engine.dispose()
        bplab = _bplab(as_app[1], tmp_path, BPLAB_SQL_ROLE=reader)
        assert bplab.json("sql", "SELECT current_user AS u, COUNT(*) AS n FROM runs") == [
            {"u": reader, "n": 0}
        ]
    finally:
        for url in (first, second):
            drop_pg_database(url)
            dispose_engines(make_url(url).set(username=app).render_as_string(False))


def test_reader_url_replaces_every_credential_of_the_database_url() -> None:
    url = make_url("postgresql+psycopg://admin:pw@h:5432/db?sslmode=require&user=x&password=y")
    got = reader_url(url, Settings(sql_role="r", sql_password="s"))
    assert (got.username, got.password, dict(got.query)) == ("r", "s", {"sslmode": "require"})
    assert reader_url(url, Settings()).password is None  # never the admin's password
    override = Settings(sql_url="postgresql://ro:z@other/db2")
    assert reader_url(url, override).render_as_string(False) == (
        "postgresql+psycopg://ro:z@other/db2"
    )
