"""The Celery settings bplab's producer and workers must agree on, and the checks a worker needs.

Here, in ``service``, so that the publishing side and the ``bplab worker`` command can use them
without importing ``worker`` (which depends on service, never the other way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The defaults live in the settings table (service.config); these names are kept for importers.
from service.config import (
    DEFAULT_QUEUE,
    DEFAULT_SOFT_TIME_LIMIT_S,
    DEFAULT_TIME_LIMIT_S,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    Settings,
    SettingsError,
    get_settings,
    load_settings,
)

# One BLAS thread per worker process: parallelism comes from processes, and N processes each
# starting N BLAS threads on N cores only fight over them. Must be in the environment before
# numpy is first imported.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class CeleryConfigError(SettingsError):
    """A configuration a worker must not start with; the message names the variable to fix."""


@dataclass(frozen=True)
class TimeLimits:
    soft: float
    hard: float
    visibility_timeout: float


def queue_name(env: Mapping[str, str] | None = None) -> str:
    """The queue bplab's tasks go to (BPLAB_QUEUE): lets several deployments share one Redis."""
    return _settings(env).queue


def time_limits(env: Mapping[str, str] | None = None) -> TimeLimits:
    """Task time limits and the visibility timeout (settings, or ``env`` in their place),
    checked together: the checks that span two variables live here, not in the table."""
    settings = _settings(env)
    visibility = settings.visibility_timeout
    hard = float(settings.task_time_limit or 0)
    soft = float(settings.task_soft_time_limit or 0)
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
    every = settings.checkpoint_seconds
    if every and soft <= every:
        raise CeleryConfigError(
            f"BPLAB_TASK_SOFT_TIME_LIMIT ({soft:g} s) must be above BPLAB_CHECKPOINT_SECONDS "
            f"({every:g} s): an attempt cut off before its first checkpoint starts over from the "
            "same point every time (BPLAB_CHECKPOINT_SECONDS=0 checkpoints by epochs instead)"
        )
    return TimeLimits(soft=soft, hard=hard, visibility_timeout=visibility)


def base_celery_config(broker_url: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Celery settings producer and workers share."""
    settings = _settings(env)
    return {
        "broker_url": broker_url,
        # JSON only: unpickling a message runs whatever code the message names.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": settings.queue,
        # The database holds every outcome; a result backend would be a second copy nobody reads.
        "task_ignore_result": True,
        "result_backend": None,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
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


def _settings(env: Mapping[str, str] | None) -> Settings:
    """The settings in force, or those ``env`` gives in place of the environment (tests)."""
    try:
        return get_settings() if env is None else load_settings(env=env)
    except CeleryConfigError:
        raise
    except SettingsError as exc:
        raise CeleryConfigError(str(exc)) from None


__all__ = [
    "BLAS_THREAD_VARIABLES",
    "DEFAULT_QUEUE",
    "DEFAULT_SOFT_TIME_LIMIT_S",
    "DEFAULT_TIME_LIMIT_S",
    "DEFAULT_VISIBILITY_TIMEOUT_S",
    "CeleryConfigError",
    "TimeLimits",
    "base_celery_config",
    "queue_name",
    "time_limits",
    "worker_celery_config",
]
