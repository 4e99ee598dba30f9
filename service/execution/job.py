"""One attempt at one run, outside the training loop: its fenced writes (fail, hand back,
cancelled), what to do when fenced out, and when its periodic checkpoint is due."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service import reliability
from service.db import leases
from service.db import repository as repo
from service.db.models import TERMINAL_STATUSES
from service.db.repository import StaleAttempt
from service.db.retry import with_retry
from service.db.session import session_scope
from service.execution.recording import EpochRecorder

log = logging.getLogger("bplab.runner")


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class CheckpointPacer:
    """Whether a run's periodic checkpoint (every ``BPLAB_CHECKPOINT_EVERY`` epochs) is taken: only
    once ``BPLAB_CHECKPOINT_SECONDS`` of training have passed since its last one (or its start).

    A checkpoint bounds the work a crash loses, and costs a serialisation and a write. A run
    that trains in a fraction of a second loses next to nothing without one, and on 1,000-epoch
    XOR runs checkpoints were the largest cost after training and recording (a sixth of a
    population task). A slow run still checkpoints every ``BPLAB_CHECKPOINT_EVERY`` epochs.
    """

    def __init__(self) -> None:
        self.seconds = reliability.checkpoint_seconds()
        self.last = time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


@dataclass
class RunJob:
    """One attempt at one run: its fenced writes outside the training loop, each retried."""

    run_id: int
    attempt: int
    url: str | None
    retry_s: float
    recorder: EpochRecorder | None = None

    def transaction(self, body: Callable[[Session], None], what: str) -> None:
        """body(session) in one transaction, retried through lost connections; the recorder's
        pending rows are written first, in the same transaction."""

        def run() -> None:
            with session_scope(self.url) as session:
                leases.bound_idle_transaction(session, reliability.lease_seconds() / 2)
                if self.recorder is not None:
                    self.recorder.write(session)
                body(session)

        with_retry(run, seconds=self.retry_s, what=f"run {self.run_id}: {what}")
        if self.recorder is not None:
            self.recorder.written()

    def fail(self, error: str) -> str | None:
        try:
            self.transaction(lambda s: repo.fail_run(s, self.run_id, self.attempt, error), "fail")
        except StaleAttempt:
            return self.after_stale()
        return "failed"

    def release(self) -> str | None:
        try:
            self.transaction(lambda s: repo.release_run(s, self.run_id, self.attempt), "release")
        except StaleAttempt:
            return self.after_stale()
        return "queued"

    def after_stale(self) -> str | None:
        """A fenced write was refused: find out why. Cancelled while we trained: keep the
        curve so far and the summary, return "cancelled". Our own write already landed (a
        commit whose acknowledgement was lost, then retried): return the status it set.
        Anything else (re-queued, claimed by a newer attempt): None, and we stop."""
        with session_scope(self.url, readonly=True) as session:
            state = leases.run_state(session, self.run_id)
        # Re-queued (its lease expired while this attempt stalled) keeps the attempt number
        # until the next claim: taken over all the same.
        if state is None or state[1] != self.attempt or state[0] in ("queued", "running"):
            log.warning(
                "run %s: attempt %s was taken over (now %s, attempt %s); its writes were "
                "rejected and it stops",
                self.run_id,
                self.attempt,
                *(state or ("gone", "-")),
            )
            return None
        status = state[0]
        if status == "cancelled" and self.recorder is not None:
            rec = self.recorder
            rec.add_last_epoch()
            last = rec.last_metrics or {}
            summary = {
                "epochs_run": rec.last_epoch,
                "final_loss": _float(last.get("loss")),
                "best_loss": None if math.isinf(rec.best_loss) else rec.best_loss,
                "accuracy": _float(last.get("accuracy")),
                "val_loss": _float(last.get("val_loss")),
            }

            def body() -> None:
                with session_scope(self.url) as session:
                    leases.record_cancelled(
                        session, self.run_id, self.attempt, rec.pending_rows(), **summary
                    )

            try:
                with_retry(body, seconds=self.retry_s, what=f"run {self.run_id}: cancel")
            except StaleAttempt:
                return None  # retried meanwhile: a newer attempt owns the run
            rec.written()
            return "cancelled"
        return status if status in TERMINAL_STATUSES else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def raised_within(
    exc: BaseException, kinds: tuple[type[BaseException], ...]
) -> BaseException | None:
    """``exc`` or the exception it was raised while handling, if one is of ``kinds``: a time
    limit that lands inside a database call can surface as the driver's error on cleanup."""
    seen: BaseException | None = exc
    while seen is not None and kinds:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


__all__ = ["CheckpointPacer", "RunJob", "default_worker_name", "raised_within"]
