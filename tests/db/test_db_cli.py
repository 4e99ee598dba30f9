"""`bplab db upgrade` / `bplab db current` through click's CliRunner and the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from service.cli import cli
from service.db import migrate


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database bplab never touched (SQLite: not even created yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return request.getfixturevalue("empty_pg_url")


def _bplab_script() -> str:
    script = shutil.which("bplab", path=os.path.dirname(sys.executable))
    assert script, f"the bplab console script is not installed next to {sys.executable}"
    return script


def test_db_upgrade_twice_and_current_via_clirunner(fresh_url):
    runner = CliRunner()
    env = {"BPLAB_DATABASE_URL": fresh_url}
    head = migrate.head_revision()

    result = runner.invoke(cli, ["db", "current"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("none")

    first = runner.invoke(cli, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert f"upgraded from an empty database to {head}" in first.output

    second = runner.invoke(cli, ["db", "upgrade"], env=env)
    assert second.exit_code == 0, second.output
    assert f"already at revision {head}, nothing to do" in second.output

    current = runner.invoke(cli, ["db", "current"], env=env)
    assert current.exit_code == 0 and current.output.strip() == f"{head} (head)"


def test_db_upgrade_as_the_installed_script(fresh_url, tmp_path):
    env = {**os.environ, "BPLAB_DATABASE_URL": fresh_url}
    head = migrate.head_revision()
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [_bplab_script(), "db", "upgrade"],
            env=env,
            cwd=tmp_path,  # the migrations are found from the package, not the cwd
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert "upgraded from an empty database" in outputs[0]
    assert "nothing to do" in outputs[1]
    proc = subprocess.run(
        [_bplab_script(), "db", "current"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"{head} (head)"


def test_db_upgrade_unreachable_server_is_a_clean_error():
    runner = CliRunner()
    url = "postgresql://bplab:hunter2@127.0.0.1:1/nowhere"
    result = runner.invoke(cli, ["db", "upgrade"], env={"BPLAB_DATABASE_URL": url})
    assert result.exit_code == 2  # issue 18: a database the user names wrongly is bad input
    assert len(result.output.strip().splitlines()) == 1
    assert "cannot reach database" in result.output
    assert "hunter2" not in result.output and "***" in result.output
