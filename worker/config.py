"""The Celery worker's configuration, built from bplab's settings.

The values and their checks live in service.celery_config, so that the publishing side and the
``bplab worker`` command (which must not import this package) use exactly the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.celery_config import CeleryConfigError, time_limits, worker_celery_config
from service.config import Settings

ConfigError = CeleryConfigError


def worker_config(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A bplab worker's full Celery configuration; raises ConfigError when it must not start."""
    if not settings.broker_url:
        raise ConfigError(
            "BPLAB_BROKER_URL is not set: a worker needs a broker, e.g. redis://host:6379/0"
        )
    return worker_celery_config(settings.broker_url, env)


__all__ = ["ConfigError", "time_limits", "worker_config"]
