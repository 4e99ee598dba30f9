"""The runner both execution paths share: claim a run, train it with the engine, record it.

The local process pool and the Celery task both call ``execute_run``; so a run behaves the same
wherever it is trained.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from engine import Network, StopTraining, TrainConfig, TrainState, train
from service.datasets import training_data
from service.db import repository as repo
from service.db.repository import StaleAttempt
from service.db.session import session_scope
from service.recording import EpochRecorder

# Saving weights, optimizer buffers and the generator state costs one small write; every 500
# epochs keeps that well under 1% of training time and bounds what a crash has to repeat.
DEFAULT_CHECKPOINT_EVERY = 500


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def checkpoint_every() -> int:
    return int(os.environ.get("BPLAB_CHECKPOINT_EVERY", DEFAULT_CHECKPOINT_EVERY))


def execute_run(
    run_id: int,
    *,
    worker: str | None = None,
    url: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> str | None:
    """Claim run ``run_id`` and train it to a final status; returns that status.

    Returns None when the run was not ours to train: already claimed or finished (a second delivery
    of the same task), or taken over by a newer attempt while we trained (fenced out).
    ``should_stop`` is polled every epoch; when it says yes the run goes back to ``queued``
    and keeps its last checkpoint, so ``bplab sweep resume`` continues it.
    """
    worker = worker or default_worker_name()
    with session_scope(url) as session:
        attempt = repo.claim_run(session, run_id, worker)
        if attempt is None:
            return None
        run = repo.get_run(session, run_id)
        config: dict[str, Any] = dict(run.config)
        seed = int(run.seed)
        checkpoint = repo.load_checkpoint(session, run_id)
    try:
        return _train_and_record(run_id, attempt, config, seed, checkpoint, url, should_stop)
    except StaleAttempt:
        return None
    except Exception as exc:  # any error in a run ends that run, never the sweep
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        try:
            with session_scope(url) as session:
                repo.fail_run(session, run_id, attempt, error=error)
        except StaleAttempt:
            return None
        return "failed"


def build_network(
    config: dict[str, Any], n_in: int, n_out: int, rng: np.random.Generator
) -> Network:
    return Network(
        [n_in, *config["hidden"], n_out],
        activation=config["activation"],
        output_activation=config["output_activation"],
        cost=config["cost"],
        skip_connections=config["skip_connections"],
        init=config["init"],
        rng=rng,
    )


def _train_and_record(
    run_id: int,
    attempt: int,
    config: dict[str, Any],
    seed: int,
    checkpoint: tuple[int, bytes] | None,
    url: str | None,
    should_stop: Callable[[], bool] | None,
) -> str | None:
    started = time.perf_counter()
    X, Y, validation = training_data(config, seed)
    rng = np.random.default_rng(seed)
    net = build_network(config, X.shape[1], Y.shape[1], rng)
    state = TrainState.from_bytes(checkpoint[1]) if checkpoint else None
    recorder = EpochRecorder(
        run_id, attempt, log_every=config.get("log_every", 1), url=url, should_stop=should_stop
    )

    def on_checkpoint(train_state: TrainState) -> None:
        # Rows up to the checkpoint land with it, so a resumed run never has a gap before its start.
        with session_scope(url) as session:
            recorder.flush(session)
            repo.save_checkpoint(
                session, run_id, attempt, train_state.epoch, train_state.to_bytes()
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
        with session_scope(url) as session:
            recorder.flush(session)
            final = history.state
            repo.save_checkpoint(session, run_id, attempt, final.epoch, final.to_bytes())
            repo.release_run(session, run_id, attempt)
        return "queued"

    recorder.add_last_epoch()
    last = recorder.last_metrics or {}
    status = "diverged" if history.outcome == "diverged" else "succeeded"
    with session_scope(url) as session:
        recorder.flush(session)
        repo.save_weights(session, run_id, attempt, [np.asarray(p) for p in net.params])
        repo.finish_run(
            session,
            run_id,
            attempt,
            status=status,
            epochs_run=recorder.last_epoch if recorder.last_epoch is not None else history.epochs,
            final_loss=_float(last.get("loss")),
            best_loss=_float(history.best_loss),
            accuracy=_float(last.get("accuracy")),
            val_loss=_float(last.get("val_loss")),
            solved_epoch=history.solved_epoch,
            wall_time_s=time.perf_counter() - started,
        )
    return status


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


__all__ = ["execute_run", "build_network", "default_worker_name", "StopTraining"]
