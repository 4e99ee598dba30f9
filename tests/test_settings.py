"""The one settings object: the README's table is the code's, the precedence holds (override,
environment, working directory's bplab.toml, user's bplab.toml, default), and a bad value is one
line with exit code 2 through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from service import grouping, reliability
from service.celery_config import time_limits
from service.cli import cli
from service.config import (
    VARIABLES,
    Settings,
    SettingsError,
    get_settings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No BPLAB_* variable set, an empty working directory and user config directory."""
    for name in list(os.environ):
        if name.startswith("BPLAB_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "bplab").mkdir(parents=True)
    return tmp_path


def _readme_rows() -> list[list[str]]:
    section = README.split("\n## Settings\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `BPLAB_")]
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]


def test_the_readme_table_is_the_code_table() -> None:
    rows = _readme_rows()
    assert [row[0].strip("`") for row in rows] == [v.name for v in VARIABLES]
    assert [row[1].strip("`") for row in rows] == [v.default_text for v in VARIABLES]
    assert all(row[2] for row in rows), "every variable has a meaning"


def test_every_variable_is_one_settings_field_with_the_table_default() -> None:
    assert [f.name for f in fields(Settings)] == [v.field for v in VARIABLES]
    plain = Settings()
    for var in VARIABLES:
        if var.default is not None:  # None: computed (time limits, reconcile period) or unset
            assert getattr(plain, var.field) == var.default, var.name


def test_no_module_but_config_reads_a_bplab_variable() -> None:
    """One reader: os.environ/getenv next to a BPLAB_ name only in service/config.py."""
    offenders = []
    for package in ("service", "worker", "migrations", "engine"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                reads = "environ" in line or "getenv" in line
                if reads and "BPLAB_" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    pending = {p for p in offenders if p.startswith("service/config.py:")}  # the one reader
    assert sorted(set(offenders) - pending) == []


def test_precedence_override_env_cwd_file_user_file_default(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = clean / "xdg" / "bplab" / "bplab.toml"
    cwd = clean / "work" / "bplab.toml"
    assert get_settings().lease_seconds == 60  # the default
    user.write_text("lease_seconds = 50\nqueue = 'from-user'\nmax_attempts = 7\n")
    assert (get_settings().lease_seconds, get_settings().queue) == (50, "from-user")
    cwd.write_text("lease_seconds = 40\nqueue = 'from-cwd'\n")
    settings = get_settings()
    assert (settings.lease_seconds, settings.queue, settings.max_attempts) == (40, "from-cwd", 7)
    monkeypatch.setenv("BPLAB_LEASE_SECONDS", "30")
    assert get_settings().lease_seconds == 30
    assert reliability.lease_seconds() == 30 and reliability.reconcile_seconds() == 7.5
    assert load_settings({"lease_seconds": 20, "queue": None}).lease_seconds == 20
    assert load_settings({"queue": None}).queue == "from-cwd"  # None: no override
    # Set but empty: the default, hiding both files.
    monkeypatch.setenv("BPLAB_LEASE_SECONDS", "")
    assert get_settings().lease_seconds == 60
    monkeypatch.delenv("BPLAB_LEASE_SECONDS")
    assert get_settings().lease_seconds == 40


def test_settings_follow_the_environment_at_run_time(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BPLAB_POPULATION_SIZE", "4")
    assert grouping.population_size() == 4
    monkeypatch.setenv("BPLAB_POPULATION_SIZE", "9")
    assert grouping.population_size() == 9
    monkeypatch.setenv("BPLAB_TEST_CRASH_RUN_IDS", "3, 7")
    assert reliability.crash_run_ids() == {3, 7}
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "20")
    monkeypatch.setenv("BPLAB_CHECKPOINT_SECONDS", "0")
    assert (reliability.checkpoint_every(), reliability.checkpoint_seconds()) == (20, 0.0)
    monkeypatch.setenv("BPLAB_POPULATION_SIZE", "0")
    with pytest.raises(ValueError, match="BPLAB_POPULATION_SIZE must be at least 1, got '0'"):
        grouping.population_size()


def test_unset_time_limits_follow_the_visibility_timeout_from_a_file(clean: Path) -> None:
    (clean / "work" / "bplab.toml").write_text("visibility_timeout = 300\n")
    limits = time_limits()
    assert limits.soft < limits.hard < limits.visibility_timeout == 300
    assert Settings(visibility_timeout=300).task_time_limit == 270


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BPLAB_LEASE_SECONDS": "abc"}, "BPLAB_LEASE_SECONDS must be a number, got 'abc'"),
        ({"BPLAB_LEASE_SECONDS": "0"}, "BPLAB_LEASE_SECONDS must be positive, got '0'"),
        ({"BPLAB_MAX_ATTEMPTS": "2.5"}, "BPLAB_MAX_ATTEMPTS must be an integer, got '2.5'"),
        ({"BPLAB_DB_RETRY_SECONDS": "-1"}, "BPLAB_DB_RETRY_SECONDS must be 0 or more, got '-1'"),
        ({"BPLAB_SQLITE_BUSY_TIMEOUT": "nan"}, "BPLAB_SQLITE_BUSY_TIMEOUT must be a finite"),
        ({"BPLAB_TEST_CRASH_RUN_IDS": "3,x"}, "BPLAB_TEST_CRASH_RUN_IDS must be comma-separated"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env, files=[])
    assert str(info.value) == message or str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_a_bad_value_through_the_cli_is_one_line_and_exit_2(clean: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPLAB_")}
    env["BPLAB_LEASE_SECONDS"] = "abc"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "sweep", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == "Error: BPLAB_LEASE_SECONDS must be a number, got 'abc'\n"
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("max_attempts = 'many'\n", "BPLAB_MAX_ATTEMPTS must be an integer, got 'many' (in "),
        ("lease_secs = 5\n", "unknown setting 'lease_secs'"),
        ("lease_seconds = \n", "not a readable TOML file"),
    ],
)
def test_a_bad_config_file_through_the_cli_is_one_line_and_exit_2(
    clean: Path, content: str, message: str
) -> None:
    path = clean / "work" / "bplab.toml"
    path.write_text(content)
    result = CliRunner().invoke(cli, ["sweep", "list"])
    assert result.exit_code == 2, result.output
    assert message in result.output and str(path) in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_cli_uses_the_database_the_file_names_unless_the_env_names_another(
    clean: Path,
) -> None:
    from_file = clean / "from_file.db"
    from_env = clean / "from_env.db"
    (clean / "xdg" / "bplab" / "bplab.toml").write_text(f"database_url = 'sqlite:///{from_file}'\n")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert from_file.exists() and not from_env.exists()
    from_file.unlink()
    result = CliRunner().invoke(
        cli, ["db", "upgrade"], env={"BPLAB_DATABASE_URL": f"sqlite:///{from_env}"}
    )
    assert result.exit_code == 0, result.output
    assert from_env.exists() and not from_file.exists()
