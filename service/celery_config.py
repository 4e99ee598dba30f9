"""The Celery settings bplab's producer and workers must agree on, and the checks a worker needs.

Here, in ``service``, so that the publishing side and the ``bplab worker`` command can use them
without importing ``worker`` (which depends on service, never the other way).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_QUEUE = "bplab"
# Redis re-delivers a message that stays unacknowledged this long (late acks: the ack comes after
# training). The task time limits must stay below it, or a long run would be trained twice at once.
DEFAULT_VISIBILITY_TIMEOUT_S = 2 * 60 * 60
# A task past its soft limit gets SoftTimeLimitExceeded (the runner records the run as failed);
# past the hard limit its process is killed.
DEFAULT_SOFT_TIME_LIMIT_S = 100 * 60
DEFAULT_TIME_LIMIT_S = 110 * 60

# One BLAS thread per worker process: parallelism comes from processes, and N processes each
# starting N BLAS threads on N cores only fight over them. Must be in the environment before
# numpy is first imported.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class CeleryConfigError(ValueError):
    """A configuration a worker must not start with; the message names the variable to fix."""


@dataclass(frozen=True)
class TimeLimits:
    soft: float
    hard: float
    visibility_timeout: float


def queue_name(env: Mapping[str, str] | None = None) -> str:
    """The queue bplab's tasks go to (BPLAB_QUEUE): lets several deployments share one Redis."""
    env = os.environ if env is None else env
    return env.get("BPLAB_QUEUE") or DEFAULT_QUEUE


def time_limits(env: Mapping[str, str] | None = None) -> TimeLimits:
    """Task time limits and the visibility timeout from the environment, checked together."""
    env = os.environ if env is None else env
    visibility = _seconds(env, "BPLAB_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT_S)
    # A limit left unset follows the one above it, so that lowering only the visibility timeout
    # (or only the hard limit) still gives a consistent set; explicit values are checked as given.
    hard = _seconds(env, "BPLAB_TASK_TIME_LIMIT", min(DEFAULT_TIME_LIMIT_S, 0.9 * visibility))
    soft = _seconds(env, "BPLAB_TASK_SOFT_TIME_LIMIT", min(DEFAULT_SOFT_TIME_LIMIT_S, 0.9 * hard))
    if soft >= hard:
        raise CeleryConfigError(
            f"BPLAB_TASK_SOFT_TIME_LIMIT ({soft:g} s) must be below "
            f"BPLAB_TASK_TIME_LIMIT ({hard:g} s)"
        )
    if hard >= visibility:
        raise CeleryConfigError(
            f"BPLAB_TASK_TIME_LIMIT ({hard:g} s) must be below the Redis visibility timeout "
            f"BPLAB_VISIBILITY_TIMEOUT ({visibility:g} s): otherwise Redis re-delivers a task that "
            "is still running and a second worker trains the same run at the same time"
        )
    return TimeLimits(soft=soft, hard=hard, visibility_timeout=visibility)


def base_celery_config(broker_url: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Celery settings producer and workers share."""
    env = os.environ if env is None else env
    visibility = _seconds(env, "BPLAB_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT_S)
    return {
        "broker_url": broker_url,
        # JSON only: unpickling a message runs whatever code the message names.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": queue_name(env),
        # The database holds every outcome; a result backend would be a second copy nobody reads.
        "task_ignore_result": True,
        "result_backend": None,
        "broker_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
    }


def worker_celery_config(broker_url: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything a bplab worker runs with; raises CeleryConfigError when it must not start."""
    limits = time_limits(env)
    config = base_celery_config(broker_url, env)
    config.update(
        {
            # Ack after training, and give the message back if the process running it dies: a
            # crash loses no run, and the database claim makes the second delivery harmless.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            # Each process reserves one message at a time, so a long run holds no others hostage.
            "worker_prefetch_multiplier": 1,
            "task_soft_time_limit": limits.soft,
            "task_time_limit": limits.hard,
            "worker_send_task_events": False,
        }
    )
    return config


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise CeleryConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise CeleryConfigError(f"{name} must be positive, got {raw!r}")
    return value
