"""The Celery configuration both sides share, and the checks that keep an unsafe worker down."""

from __future__ import annotations

import subprocess
import time

import pytest
from click.testing import CliRunner

from service.celery_config import CeleryConfigError, base_celery_config, time_limits
from service.producer import BrokerUnavailable, check_broker
from tests.distributed.bplab_cli import BPLAB, bplab_cli
from tests.distributed.stack import free_port

BROKER = "redis://127.0.0.1:6379/11"


def test_json_only_late_acks_prefetch_one() -> None:
    from service.config import Settings
    from worker.config import worker_config

    config = worker_config(Settings(database_url="sqlite://", broker_url=BROKER), env={})
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_ignore_result"]
    assert config["broker_connection_retry_on_startup"]
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert config["task_soft_time_limit"] < config["task_time_limit"] < visibility


def test_the_producer_speaks_the_workers_serializer_and_queue() -> None:
    config = base_celery_config(BROKER, env={"BPLAB_QUEUE": "q1", "BPLAB_VISIBILITY_TIMEOUT": "60"})
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["task_default_queue"] == "q1"
    assert config["broker_transport_options"] == {"visibility_timeout": 60.0}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "BPLAB_VISIBILITY_TIMEOUT": "600",
                "BPLAB_TASK_TIME_LIMIT": "600",
                "BPLAB_TASK_SOFT_TIME_LIMIT": "500",
            },
            "BPLAB_TASK_TIME_LIMIT (600 s) must be below the Redis visibility timeout",
        ),
        (
            {"BPLAB_TASK_TIME_LIMIT": "100", "BPLAB_TASK_SOFT_TIME_LIMIT": "100"},
            "BPLAB_TASK_SOFT_TIME_LIMIT (100 s) must be below BPLAB_TASK_TIME_LIMIT",
        ),
        ({"BPLAB_VISIBILITY_TIMEOUT": "two hours"}, "BPLAB_VISIBILITY_TIMEOUT must be a number"),
        ({"BPLAB_TASK_TIME_LIMIT": "-5"}, "BPLAB_TASK_TIME_LIMIT must be positive"),
    ],
)
def test_unsafe_time_limits_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(CeleryConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        time_limits(env)


def test_unset_limits_follow_a_lowered_visibility_timeout() -> None:
    limits = time_limits({"BPLAB_VISIBILITY_TIMEOUT": "300"})
    assert limits.soft < limits.hard < limits.visibility_timeout == 300
    limits = time_limits({"BPLAB_TASK_TIME_LIMIT": "60"})
    assert limits.soft < limits.hard == 60


def test_limits_below_the_visibility_timeout_are_accepted() -> None:
    limits = time_limits(
        {
            "BPLAB_VISIBILITY_TIMEOUT": "600",
            "BPLAB_TASK_TIME_LIMIT": "590",
            "BPLAB_TASK_SOFT_TIME_LIMIT": "580",
        }
    )
    assert (limits.soft, limits.hard, limits.visibility_timeout) == (580, 590, 600)


def test_bplab_worker_refuses_to_start_with_unsafe_limits(tmp_path) -> None:
    env = {
        "BPLAB_BROKER_URL": BROKER,
        "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "BPLAB_VISIBILITY_TIMEOUT": "300",
        "BPLAB_TASK_TIME_LIMIT": "3600",
    }
    result = CliRunner().invoke(bplab_cli(), ["worker"], env=env)
    assert result.exit_code == 2, result.output  # bad settings, like any bad BPLAB_* value
    assert "must be below the Redis visibility timeout" in result.output


def test_bplab_worker_needs_a_broker(tmp_path) -> None:
    env = {"BPLAB_BROKER_URL": "", "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = CliRunner().invoke(bplab_cli(), ["worker"], env=env)
    assert result.exit_code == 1
    assert "BPLAB_BROKER_URL is not set" in result.output


def test_celery_itself_refuses_to_load_the_app_with_unsafe_limits(tmp_path) -> None:
    """`celery -A worker.app worker` (no bplab wrapper) stops too, with the same message."""
    import os
    import sys

    env = {**os.environ, "BPLAB_BROKER_URL": BROKER, "BPLAB_TASK_TIME_LIMIT": "99999"}
    result = subprocess.run(
        [sys.executable, "-c", "import worker.app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "must be below the Redis visibility timeout" in result.stderr


def test_check_broker_fails_fast_naming_the_masked_url() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        check_broker(f"redis://:hunter2@127.0.0.1:{port}/3", timeout=2)
    assert time.monotonic() - started < 5
    assert f"redis://:***@127.0.0.1:{port}/3" in str(info.value)
    assert "hunter2" not in str(info.value)
    check_broker(BROKER, timeout=2)  # the real one answers


def test_submit_without_a_broker_points_to_the_local_path(tmp_path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ndataset: xor\nparameters: {hidden: [2], epochs: 5}\n")
    result = subprocess.run(
        [*BPLAB, "sweep", "submit", str(spec)],
        env={
            **__import__("os").environ,
            "BPLAB_BROKER_URL": "",
            "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "BPLAB_BROKER_URL is not set" in result.stderr
    assert "bplab sweep run" in result.stderr


def test_a_soft_limit_within_the_checkpoint_interval_is_refused_at_worker_start(tmp_path) -> None:
    """Every attempt would be handed back before its first checkpoint and start over from the
    same point: the run could never finish. The worker refuses to start (bad settings: exit 2)."""
    env = {
        **__import__("os").environ,
        "BPLAB_BROKER_URL": "redis://127.0.0.1:6379/11",
        "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "BPLAB_TASK_SOFT_TIME_LIMIT": "8",
        "BPLAB_TASK_TIME_LIMIT": "30",
        "BPLAB_CHECKPOINT_SECONDS": "10",
    }
    result = subprocess.run([*BPLAB, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SOFT_TIME_LIMIT (8 s) must be above BPLAB_CHECKPOINT_SECONDS (10 s)" in lines[0]
    assert not (tmp_path / "x.db").exists()  # refused before touching anything
    # by epochs instead of seconds, the same limit is fine
    assert time_limits({**env, "BPLAB_CHECKPOINT_SECONDS": "0"}).soft == 8
