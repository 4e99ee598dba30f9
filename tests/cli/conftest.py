"""Helpers for driving the real `bplab` CLI in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import text

from service.cli import cli
from service.db.session import session_scope

BPLAB = [sys.executable, "-m", "service.cli"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bplab.db'}"


class Bplab:
    """Runs bplab commands in-process (CliRunner) against one database URL."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd
        self.env = {"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": ""}

    def __call__(self, *args: str, expect: int | None = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (
                f"bplab {' '.join(args)} exited {result.exit_code}, expected {expect}:\n"
                f"{result.output}"
            )
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--format", "json").stdout)

    def subprocess(self, *args: str, **kwargs: object) -> subprocess.Popen:
        env = {**os.environ, **self.env}
        return subprocess.Popen([*BPLAB, *args], env=env, cwd=self.cwd, **kwargs)  # type: ignore[call-overload]

    def write_spec(self, name: str, spec: dict) -> Path:
        path = self.cwd / name
        path.write_text(yaml.safe_dump(spec))
        return path


@pytest.fixture
def bplab(sqlite_url: str, tmp_path: Path) -> Bplab:
    return Bplab(sqlite_url, tmp_path)


def small_xor_spec(**overrides: object) -> dict:
    """A sweep that finishes in seconds: 2 learning rates x 2 seeds of XOR 2-2-1."""
    spec = {
        "name": "xor-small",
        "dataset": "xor",
        "seeds": 2,
        "parameters": {
            "learning_rate": [0.5, 2.0],
            "momentum": 0.9,
            "hidden": 2,
            "epochs": 300,
            "stop_within": 0.5,
            "log_every": 7,
        },
    }
    spec.update(overrides)
    return spec


# --- the sweep management tests (test_manage_*.py) ---------------------------------------


def tiny_spec(**overrides: object) -> dict:
    """2 learning rates x 2 seeds of XOR, 60 epochs: a sweep that trains in a blink."""
    spec = {
        "name": "tiny",
        "dataset": "xor",
        "seeds": 2,
        "parameters": {"learning_rate": [0.5, 2.0], "epochs": 60, "log_every": 10},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def lab(db_url: str, tmp_path: Path) -> Bplab:
    return Bplab(db_url, tmp_path)


def count(url: str, sql: str) -> int:
    with session_scope(url, readonly=True) as session:
        return int(session.execute(text(sql)).scalar() or 0)


def one_line_exit_2(lab: Bplab, *args: str) -> str:
    result = lab(*args, expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]
