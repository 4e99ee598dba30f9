"""The knobs of bplab's fault tolerance, read from the environment (each read afresh).

BPLAB_LEASE_SECONDS       a running run whose heartbeat is older than this belongs to a dead
                          or stalled worker and is taken back (default 60)
BPLAB_MAX_ATTEMPTS        tries per run (since its last `sweep retry`) before it is failed (3)
BPLAB_DB_RETRY_SECONDS    how long a worker retries a database write that lost its connection
                          before it gives the run up to the reconciler (60)
BPLAB_REQUEUE_GRACE_SECONDS  a queued run with no message in the broker is re-published only
                          after waiting this long since it was last queued or published (60)
BPLAB_RECONCILE_SECONDS   how often each worker runs the reconciler (default: lease / 4)
BPLAB_CHECKPOINT_EVERY    epochs between checkpoints (500; service.execution)
BPLAB_CHECKPOINT_SECONDS  ... taken only once this much training time has passed since the
                          run's last checkpoint (10; 0 = every BPLAB_CHECKPOINT_EVERY epochs)
"""

from __future__ import annotations

import os

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_DB_RETRY_SECONDS = 60.0
DEFAULT_REQUEUE_GRACE_SECONDS = 60.0
# A heartbeat at least this often, and at least four per lease: a worker that is alive never
# looks dead, even when one heartbeat is slow or lost.
MAX_HEARTBEAT_SECONDS = 1.0


class ReliabilityConfigError(ValueError):
    """A malformed reliability variable; the message names it."""


def _number(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ReliabilityConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > minimum:
        raise ReliabilityConfigError(f"{name} must be greater than {minimum:g}, got {raw!r}")
    return value


def lease_seconds() -> float:
    return _number("BPLAB_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)


def heartbeat_seconds() -> float:
    """How often a training run renews its lease (and looks for a cancel)."""
    return min(MAX_HEARTBEAT_SECONDS, lease_seconds() / 4)


def max_attempts() -> int:
    return int(_number("BPLAB_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, minimum=0.5))


def db_retry_seconds() -> float:
    return _number("BPLAB_DB_RETRY_SECONDS", DEFAULT_DB_RETRY_SECONDS, minimum=-1.0)


def requeue_grace_seconds() -> float:
    return _number("BPLAB_REQUEUE_GRACE_SECONDS", DEFAULT_REQUEUE_GRACE_SECONDS, minimum=-1.0)


def reconcile_seconds() -> float:
    return _number("BPLAB_RECONCILE_SECONDS", lease_seconds() / 4)


def crash_run_ids() -> frozenset[int]:
    """FAULT INJECTION, for tests/faults only: run ids whose training process must die.

    BPLAB_TEST_CRASH_RUN_IDS="3,7" makes service.execution end its process with os._exit(1)
    right after claiming run 3 or 7, on every attempt: the "poison run" of the fault suite.
    Unset (the only sane production value), it does nothing.
    """
    raw = os.environ.get("BPLAB_TEST_CRASH_RUN_IDS", "")
    return frozenset(int(p) for p in raw.replace(" ", "").split(",") if p)
