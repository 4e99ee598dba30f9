"""docker-compose.yml checked without a Docker engine: the compose-spec schema, then the rest."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.distributed.bplab_cli import bplab_cli
from tests.distributed.compose import (
    COMPOSE_FILE,
    bplab_rules_errors,
    cross_reference_errors,
    interpolate,
    load_compose,
    schema_errors,
)

# The compose file's documented defaults: what `docker compose config` would see with no .env.
NO_ENV: dict[str, str] = {}


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe, "check-jsonschema is in the test extra: pip install -e '.[test]'"
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_spec_schema() -> None:
    doc = load_compose()
    assert schema_errors(doc) == []
    assert schema_errors(interpolate(doc, NO_ENV)) == []
    result = _check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_cross_references_and_bplab_rules_hold() -> None:
    doc = interpolate(load_compose(), NO_ENV)
    assert cross_reference_errors(doc, bplab_cli()) == []
    assert bplab_rules_errors(doc) == []


def test_passwords_come_from_the_environment() -> None:
    doc = load_compose()
    env = {"POSTGRES_PASSWORD": "s3cret-pg", "REDIS_PASSWORD": "s3cret-redis"}
    resolved = interpolate(doc, env)
    worker_env = resolved["services"]["worker"]["environment"]
    assert ":s3cret-pg@postgres:5432/" in worker_env["BPLAB_DATABASE_URL"]
    assert ":s3cret-redis@redis:6379/" in worker_env["BPLAB_BROKER_URL"]
    postgres_env = resolved["services"]["postgres"]["environment"]
    # POSTGRES_PASSWORD is the password of bplab's own role (docker/postgres-init); the image's
    # superuser has another one, so that nothing bplab runs can log in as it (issue 24).
    assert postgres_env["BPLAB_APP_PASSWORD"] == "s3cret-pg"
    assert postgres_env["POSTGRES_USER"] != "bplab"
    assert postgres_env["POSTGRES_PASSWORD"] != "s3cret-pg"
    assert "s3cret-redis" in resolved["services"]["redis"]["command"]
    # Without them, the documented development default.
    dev = interpolate(doc, NO_ENV)["services"]["worker"]["environment"]
    assert ":bplab-dev@" in dev["BPLAB_DATABASE_URL"]


def test_a_deliberately_broken_copy_fails_the_schema(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "condition: service_completed_successfully" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("service_completed_successfully", "service_finished"))
    errors = schema_errors(load_compose(broken))
    assert any("service_finished" in e for e in errors), errors
    result = _check_jsonschema(broken)
    assert result.returncode != 0
    assert "service_finished" in result.stdout + result.stderr


def _mutations() -> list[tuple[str, object, str]]:
    def depends_on_typo(doc: dict) -> None:
        deps = doc["services"]["worker"]["depends_on"]
        deps["postgress"] = deps.pop("postgres")

    def unknown_command(doc: dict) -> None:
        doc["services"]["worker"]["command"] = ["bplab", "workers", "--loglevel", "INFO"]

    def public_redis(doc: dict) -> None:
        doc["services"]["redis"]["ports"] = ["6379:6379"]

    def undeclared_volume(doc: dict) -> None:
        doc["services"]["postgres"]["volumes"] = ["pgdata:/var/lib/postgresql/data"]

    def worker_starts_early(doc: dict) -> None:
        doc["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_started"

    def no_persistence(doc: dict) -> None:
        doc["services"]["redis"]["command"] = ["redis-server"]

    return [
        ("depends_on typo", depends_on_typo, "depends_on names no service: 'postgress'"),
        ("unknown command", unknown_command, "`bplab workers --loglevel INFO` is not a bplab"),
        ("public redis", public_redis, "published beyond 127.0.0.1"),
        ("undeclared volume", undeclared_volume, "volume 'pgdata' is not declared"),
        ("worker before migrate", worker_starts_early, "depends on migrate with condition"),
        ("no appendonly", no_persistence, "without appendonly"),
    ]


@pytest.mark.parametrize(
    ("label", "mutate", "expected"), _mutations(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_broken_cross_references_are_caught(label: str, mutate, expected: str) -> None:
    doc = copy.deepcopy(interpolate(load_compose(), NO_ENV))
    mutate(doc)
    # Still schema-valid: only the cross-reference and rule checks can catch these.
    assert schema_errors(doc) == [], label
    errors = cross_reference_errors(doc, bplab_cli()) + bplab_rules_errors(doc)
    assert any(expected in e for e in errors), (label, errors)


def test_worker_and_migrate_commands_are_runnable(tmp_path: Path) -> None:
    """`--help` of each bplab command the compose file runs works in a real process."""
    from tests.distributed.bplab_cli import BPLAB

    doc = interpolate(load_compose(), NO_ENV)
    for name in ("migrate", "worker"):
        argv = doc["services"][name]["command"]
        assert argv[0] == "bplab"
        subcommand = [a for a in argv[1:] if not a.startswith("-")]
        subcommand = subcommand[: 2 if name == "migrate" else 1]
        result = subprocess.run(
            [*BPLAB, *subcommand, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
