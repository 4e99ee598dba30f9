"""Retry a database operation through a lost connection, with exponential backoff, for a while.

Only errors that say the connection or the server went away are retried (OperationalError,
InterfaceError, or a DBAPIError that invalidated its connection): a constraint violation or
StaleAttempt is an answer, not an outage, and goes straight to the caller.

The operation must be a whole transaction that is safe to run twice (every bplab write is:
epoch rows are insert-or-ignore, checkpoints and weights are upserts, the fence re-checks the
attempt): a commit whose acknowledgement was lost may have landed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")
log = logging.getLogger("bplab.db")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """True for an error that a new connection may not get (server down, network cut)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def with_retry(
    operation: Callable[[], T],
    *,
    seconds: float,
    what: str = "database write",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """operation(), retried on transient errors until ``seconds`` have passed; then the error."""
    deadline = clock() + seconds
    delay = FIRST_DELAY_S
    failures = 0
    while True:
        try:
            result = operation()
        except Exception as exc:
            left = deadline - clock()
            if not is_transient(exc) or left <= 0:
                raise
            failures += 1
            pause = min(delay, left)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("%s failed (%s); retry %d in %.1f s", what, first, failures, pause)
            sleep(pause)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if failures:
            log.warning("%s succeeded after %d retries", what, failures)
        return result
