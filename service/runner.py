"""The runner both execution paths share: claim a run, train it with the engine, record it.

The local process pool and the Celery task both call ``execute_run``; so a run behaves the same
wherever it is trained.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine import StopTraining, TrainConfig, TrainState, train
from service import reliability
from service.datasets import training_data
from service.db import leases
from service.db import repository as repo
from service.db.models import TERMINAL_STATUSES
from service.db.repository import StaleAttempt
from service.db.retry import is_transient, with_retry
from service.db.session import session_scope
from service.networks import network_from_config
from service.recording import EpochRecorder, final_summary

log = logging.getLogger("bplab.runner")

# Saving weights, optimizer buffers and the generator state costs one small write; every 500
# epochs keeps that well under 1% of training time and bounds what a crash has to repeat.
DEFAULT_CHECKPOINT_EVERY = 500
DEFAULT_CHECKPOINT_SECONDS = 10.0


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_every() -> int:
    return int(os.environ.get("BPLAB_CHECKPOINT_EVERY", DEFAULT_CHECKPOINT_EVERY))


def checkpoint_seconds() -> float:
    return float(os.environ.get("BPLAB_CHECKPOINT_SECONDS", DEFAULT_CHECKPOINT_SECONDS))


class CheckpointPacer:
    """Whether a run's periodic checkpoint (every ``checkpoint_every()`` epochs) is taken: only
    once ``checkpoint_seconds()`` of training have passed since its last one (or its start).

    A checkpoint bounds the work a crash loses, and costs a serialisation and a write. A run
    that trains in a fraction of a second loses next to nothing without one, and on 1,000-epoch
    XOR runs checkpoints were the largest cost after training and recording (a sixth of a
    population task). A slow run still checkpoints every ``checkpoint_every()`` epochs.
    """

    def __init__(self) -> None:
        self.seconds = checkpoint_seconds()
        self.last = time.perf_counter()

    def due(self) -> bool:
        now = time.perf_counter()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def execute_run(
    run_id: int,
    *,
    worker: str | None = None,
    url: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    release_on: tuple[type[BaseException], ...] = (),
) -> str | None:
    """Claim run ``run_id`` and train it to a final status; returns that status.

    Returns None when the run was not ours to train: already claimed or finished (a second delivery
    of the same task), or taken over by a newer attempt while we trained (fenced out).
    ``should_stop`` is polled every epoch; when it says yes the run goes back to ``queued``
    and keeps its last checkpoint, so ``bplab sweep resume`` continues it. An exception of a
    type in ``release_on`` (the Celery task passes SoftTimeLimitExceeded) also hands the run
    back to ``queued`` with its last checkpoint, returning "queued", unless the run has used
    up its attempts (BPLAB_MAX_ATTEMPTS): then it fails. Returns "cancelled" when the run was
    cancelled while it trained. A database that stays unreachable for longer than
    BPLAB_DB_RETRY_SECONDS raises: the run is left to the reconciler (its lease expires).
    """
    worker = worker or default_worker_name()
    retry_s = reliability.db_retry_seconds()

    def claim() -> tuple[int, dict[str, Any], int, int, tuple[int, bytes] | None] | None:
        with session_scope(url) as session:
            attempt = repo.claim_run(session, run_id, worker)
            if attempt is None:
                return None
            run = repo.get_run(session, run_id)
            assert run is not None  # we just claimed it
            checkpoint = repo.claimed_checkpoints(session, {run_id: attempt}).get(run_id)
            return attempt, dict(run.config), int(run.seed), int(run.retry_base), checkpoint

    claimed = with_retry(claim, seconds=retry_s, what=f"run {run_id}: claim")
    if claimed is None:
        return None
    attempt, config, seed, retry_base, checkpoint = claimed
    if run_id in reliability.crash_run_ids():
        os._exit(1)  # fault injection (tests/faults): see reliability.crash_run_ids
    if checkpoint is not None:
        log.info(
            "run %s: attempt %s resumes from its checkpoint at epoch %s",
            run_id,
            attempt,
            checkpoint[0],
        )
    job = RunJob(run_id, attempt, url, retry_s)
    try:
        return _train_and_record(job, config, seed, checkpoint, should_stop)
    except StaleAttempt:
        return job.after_stale()
    except release_on as exc:
        tries = attempt - retry_base
        if tries >= reliability.max_attempts():
            return job.fail(f"{type(exc).__name__}: {exc} (gave up after {tries} attempt(s))")
        return job.release()
    except Exception as exc:  # any error in a run ends that run, never the sweep
        if is_transient(exc):
            raise  # the database is gone: the lease expires and the reconciler takes over
        return job.fail(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")


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


def _train_and_record(
    job: RunJob,
    config: dict[str, Any],
    seed: int,
    checkpoint: tuple[int, bytes] | None,
    should_stop: Callable[[], bool] | None,
) -> str | None:
    run_id, attempt = job.run_id, job.attempt
    started = time.perf_counter()
    X, Y, validation = training_data(config, seed)
    rng = np.random.default_rng(seed)
    net = network_from_config(config, X.shape[1], Y.shape[1], rng)
    state = TrainState.from_bytes(checkpoint[1]) if checkpoint else None
    recorder = job.recorder = EpochRecorder(
        run_id,
        attempt,
        log_every=config.get("log_every", 1),
        url=job.url,
        should_stop=should_stop,
        best_loss=state.best_loss if state is not None else math.inf,
    )

    pacer = CheckpointPacer()

    def on_checkpoint(train_state: TrainState) -> None:
        if not pacer.due():
            return
        # Rows up to the checkpoint land with it, so a resumed run never has a gap before its start.
        data = train_state.to_bytes()
        job.transaction(
            lambda s: repo.save_checkpoint(s, run_id, attempt, train_state.epoch, data),
            "checkpoint",
        )

    history = train(
        net,
        X,
        Y,
        TrainConfig.from_dict(config),
        rng=rng,
        on_epoch=recorder.on_epoch,
        validation=validation,
        state=state,
        checkpoint_every=checkpoint_every(),
        on_checkpoint=on_checkpoint,
    )
    if history.outcome == "stopped":
        # Interrupted (Ctrl-C in a local sweep): keep the exact state; the next claim resumes here.
        final = history.state
        data = final.to_bytes()

        def release(session: Session) -> None:
            repo.save_checkpoint(session, run_id, attempt, final.epoch, data)
            repo.release_run(session, run_id, attempt)

        job.transaction(release, "release")
        return "queued"

    recorder.add_last_epoch()
    summary = final_summary(recorder, history, time.perf_counter() - started)
    weights = [np.asarray(p) for p in net.params]

    # The last rows, the weights and the summary in one transaction: a run is never
    # 'succeeded' with rows or weights missing.
    def finish(session: Session) -> None:
        repo.save_weights(session, run_id, attempt, weights)
        repo.finish_run(session, run_id, attempt, **summary)

    job.transaction(finish, "finish")
    return str(summary["status"])


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


__all__ = ["execute_run", "default_worker_name", "StopTraining"]
