"""A local pool process trusts the schema check its parent has just made (issue 22): it neither
imports Alembic nor reads the migrations, and imports psycopg only to write to PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text

from service.db import migrate
from service.db.session import dispose_engines, get_engine, stored_revision

# What a pool process does at start (service.local._init_process), in a fresh interpreter,
# then a read through the adopted engine, then which modules it had to import.
_CHILD = textwrap.dedent(
    """
    import sys, threading
    from service import local
    local._init_process(threading.Event(), sys.argv[1], sys.argv[2] == "checked")
    from service.db.session import session_scope
    from sqlalchemy import text
    with session_scope(sys.argv[1]) as s:
        print(s.execute(text("SELECT count(*) FROM runs")).scalar())
    print(" ".join(m for m in ("alembic", "psycopg") if m in sys.modules))
    """
)


def _child(url: str, mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_child_told_the_schema_is_checked_skips_alembic_and_psycopg(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    get_engine(url)  # the parent's check: creates the file at head
    dispose_engines(url)
    count, imported = (_child(url, "checked") + [""])[:2]
    assert count == "0"
    assert imported == ""


def test_a_child_not_told_checks_and_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    count, imported = (_child(url, "unchecked") + [""])[:2]
    assert count == "0"  # the child created the schema itself
    assert imported == ""  # from the snapshot (service.db.snapshot), not through Alembic
    engine = get_engine(url)
    with engine.connect() as conn:
        assert stored_revision(engine) == migrate.head_revision()
        assert conn.execute(text("SELECT count(*) FROM sweeps")).scalar() == 0
    dispose_engines(url)
