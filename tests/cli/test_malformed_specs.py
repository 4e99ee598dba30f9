"""Every malformed spec: exit code 2, one line naming the field, nothing in the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import cli
from tests.spec.malformed import CASES, write_case


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'bplab.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"BPLAB_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return url


def _row_counts(url: str) -> dict[str, int]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("sweeps", "runs", "epoch_metrics", "run_weights", "checkpoints")
        }


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize(("case_id", "spec", "field"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_refused(
    migrated_db: str, tmp_path: Path, command: str, case_id: str, spec: object, field: str
) -> None:
    path = write_case(tmp_path, spec)
    result = CliRunner().invoke(
        cli,
        ["sweep", command, str(path), "--workers", "1"]
        if command == "run"
        else ["sweep", command, str(path)],
        env={"BPLAB_DATABASE_URL": migrated_db, "BPLAB_BROKER_URL": ""},
    )
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message, message
    assert message.startswith(f"Error: {path}: "), message
    assert field in message, message
    assert _row_counts(migrated_db) == dict.fromkeys(_row_counts(migrated_db), 0)


def test_there_are_enough_distinct_cases() -> None:
    assert len({case_id for case_id, _, _ in CASES}) >= 25
