"""The Celery stack fixture of the fault suite, for the two-worker test here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.distributed.stack import drop_database
from tests.faults.harness import FaultStack, new_stack, stop_all


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FaultStack]:
    s = new_stack(tmp_path)
    try:
        yield s
    finally:
        try:
            stop_all(s)
        finally:
            with contextlib.suppress(redis.RedisError):
                s.clean_redis()
            drop_database(s.database_url)
