"""The knobs of bplab's fault tolerance, as functions over the one settings object.

The variables (BPLAB_LEASE_SECONDS, BPLAB_MAX_ATTEMPTS, BPLAB_DB_RETRY_SECONDS,
BPLAB_REQUEUE_GRACE_SECONDS, BPLAB_RECONCILE_SECONDS, BPLAB_CHECKPOINT_EVERY,
BPLAB_CHECKPOINT_SECONDS, BPLAB_TEST_CRASH_RUN_IDS), their defaults and meanings are in
service.config.VARIABLES; each function here reads the settings in force now (tests change the
environment at run time) and adds only the policy derived from them (the heartbeat).
"""

from __future__ import annotations

from service.config import SettingsError, get_settings

# Kept for callers that catch it by this name: a malformed variable, the message names it.
ReliabilityConfigError = SettingsError

# A heartbeat at least this often, and at least four per lease: a worker that is alive never
# looks dead, even when one heartbeat is slow or lost.
MAX_HEARTBEAT_SECONDS = 1.0


def lease_seconds() -> float:
    """BPLAB_LEASE_SECONDS: a running run without a heartbeat for this long is taken back."""
    return get_settings().lease_seconds


def heartbeat_seconds() -> float:
    """How often a training run renews its lease (and looks for a cancel)."""
    return min(MAX_HEARTBEAT_SECONDS, lease_seconds() / 4)


def max_attempts() -> int:
    """BPLAB_MAX_ATTEMPTS: tries per run before it is failed."""
    return get_settings().max_attempts


def db_retry_seconds() -> float:
    """BPLAB_DB_RETRY_SECONDS: how long a write that lost its connection is retried."""
    return get_settings().db_retry_seconds


def requeue_grace_seconds() -> float:
    """BPLAB_REQUEUE_GRACE_SECONDS: a queued run missing from the broker waits this long."""
    return get_settings().requeue_grace_seconds


def reconcile_seconds() -> float:
    """BPLAB_RECONCILE_SECONDS: the reconciler's period (default a quarter of the lease)."""
    return float(get_settings().reconcile_seconds or lease_seconds() / 4)


def checkpoint_every() -> int:
    """BPLAB_CHECKPOINT_EVERY: epochs between a run's checkpoints (0: none)."""
    return get_settings().checkpoint_every


def checkpoint_seconds() -> float:
    """BPLAB_CHECKPOINT_SECONDS: training time between two checkpoints (0: every
    BPLAB_CHECKPOINT_EVERY epochs)."""
    return get_settings().checkpoint_seconds


def crash_run_ids() -> frozenset[int]:
    """FAULT INJECTION, for tests/faults only: run ids whose training process must die.

    BPLAB_TEST_CRASH_RUN_IDS="3,7" makes service.execution end its process with os._exit(1)
    right after claiming run 3 or 7, on every attempt: the "poison run" of the fault suite.
    Unset (the only sane production value), it does nothing.
    """
    return get_settings().test_crash_run_ids
