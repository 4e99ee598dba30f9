"""One population: same-shape runs trained at once by engine.train_population, recorded run by run.

Each member keeps its own epoch rows, heartbeat, checkpoints, weights and summary, every write
fenced by its own attempt. The database work of all members goes in shared transactions (one
per flush, one for the members that finish in the same epoch), which is what makes small runs
cheap: per run, the database, not the engine, is the cost. A group of one is a single run.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine import History, TrainConfig, TrainState, train_population
from service import reliability
from service.datasets import training_data
from service.db import leases
from service.db import repository as repo
from service.db.blobs import pack_arrays, sha256_hex
from service.db.bulk import insert_epoch_rows_fenced_many
from service.db.models import Checkpoint, RunWeights
from service.db.repository import StaleAttempt
from service.db.retry import is_transient, with_retry
from service.db.session import dispose_engines, session_scope
from service.execution.job import CheckpointPacer, RunJob, raised_within
from service.execution.recording import FLUSH_ROWS, EpochRecorder, epoch_rows, final_summary
from service.networks import network_from_config
from service.pruning import Decision, Pruner, finish_unstarted, summary_fields

log = logging.getLogger("bplab.population")

_NONE = np.empty(0, dtype=np.int64)


@dataclass
class Member:
    """One claimed run in a population: what it trains from and how far it got."""

    run_id: int
    attempt: int
    config: dict[str, Any]
    seed: int
    retry_base: int
    checkpoint: tuple[int, bytes] | None
    job: RunJob
    rec: EpochRecorder | None = None
    net: Any = None
    rng: np.random.Generator | None = None
    state: TrainState | None = None
    history: History | None = None
    stale: bool = False
    done: bool = False  # its final write landed (or it was handed back)
    status: str | None = None
    started: float = field(default_factory=time.perf_counter)
    pacer: CheckpointPacer = field(default_factory=CheckpointPacer)
    pruned: Decision | None = None  # the sweep's early_terminate stopped it
    checkpointed: bool = False  # a checkpoint of this attempt landed: it got further


class Population:
    """One population: build, train, and write every member's results."""

    def __init__(
        self,
        members: list[Member],
        url: str | None,
        should_stop: Callable[[], bool] | None,
        release_on: tuple[type[BaseException], ...],
    ) -> None:
        self.members = members
        self.url = url
        self.should_stop = should_stop
        self.release_on = release_on
        self.retry_s = reliability.db_retry_seconds()
        self.heartbeat_s = reliability.heartbeat_seconds()
        self.idle_s = reliability.lease_seconds() / 2
        self.checkpoints: dict[int, TrainState] = {}  # member index -> state to save
        self.finishing: list[int] = []  # member indices whose final write is due
        self.last_flush = time.monotonic()
        self.stopping = False
        self.any_stale = False
        self._members: np.ndarray | None = None
        self._first_epochs: np.ndarray | None = None
        self.pruner: Pruner | None = None
        self.limit_reached: BaseException | None = None  # the release_on exception, if it came

    # -- the whole life of the population ---------------------------------------------
    def run(self) -> None:
        live = self.members  # a time limit before training hands every member back
        try:
            live = self._prune_claimed(self._build())
            if not live:
                return
            X, Y, validation = training_data(live[0].config, live[0].seed)
            self.live = live
            self.log_every = np.array([max(1, int(m.config.get("log_every", 1))) for m in live])
            train_population(
                [m.net for m in live],
                X,
                Y,
                [TrainConfig.from_dict(m.config) for m in live],
                rngs=[m.rng for m in live],  # type: ignore[misc]
                on_epochs=self._on_epochs,
                validation=validation,
                states=[m.state for m in live],
                checkpoint_every=reliability.checkpoint_every(),
                on_checkpoint=self._on_checkpoint,
                on_finish=self._on_finish,
            )
            self._flush()
        except (Exception, *self.release_on) as exc:
            limit = raised_within(exc, self.release_on)
            if limit is not None:
                self.hand_back(live, limit)
            elif is_transient(exc):
                raise  # the database is gone: leases expire and the reconciler takes over
            else:
                error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
                for m in live:
                    if not m.done:
                        m.status = m.job.fail(error)
                        m.done = True

    def hand_back(self, live: list[Member], limit: BaseException) -> None:
        """The time limit (``release_on``) came: every unfinished member goes back to the queue
        with its last checkpoint. Only an attempt that got nowhere counts against the run."""
        self.limit_reached = limit
        # Landing in a database call, the limit left its connection mid-statement: use new ones.
        dispose_engines(self.url)
        for m in live:
            if not m.done:
                tries = m.attempt - m.retry_base
                if tries >= reliability.max_attempts() and not m.checkpointed:
                    msg = f"{type(limit).__name__}: {limit} (gave up after {tries} attempt(s))"
                    m.status = m.job.fail(msg)
                else:
                    m.status = m.job.release()
                m.done = True

    def _build(self) -> list[Member]:
        live = []
        for m in self.members:
            try:
                X, Y, _ = training_data(m.config, m.seed)
                rng = np.random.default_rng(m.seed)
                m.net = network_from_config(m.config, X.shape[1], Y.shape[1], rng)
                m.rng = rng
                m.state = TrainState.from_bytes(m.checkpoint[1]) if m.checkpoint else None
                if m.checkpoint is not None:  # the line service.runner logs for a single run
                    log.info(
                        "run %s: attempt %s resumes from its checkpoint at epoch %s",
                        m.run_id,
                        m.attempt,
                        m.checkpoint[0],
                    )
                TrainConfig.from_dict(m.config)
            except Exception as exc:  # a bad run fails alone, as in execute_run
                if is_transient(exc) or raised_within(exc, self.release_on) is not None:
                    raise
                m.status = m.job.fail(f"{type(exc).__name__}: {exc}")
                m.done = True
                continue
            best = m.state.best_loss if m.state is not None else math.inf
            m.rec = m.job.recorder = EpochRecorder(m.run_id, m.attempt, best_loss=best)
            live.append(m)
        return live

    # -- engine callbacks ---------------------------------------------------------------
    def _on_epochs(self, members: np.ndarray, epochs: np.ndarray, metrics: dict) -> list[int]:
        # called every epoch: the common case (no row due, no write due) must cost little
        if members is not self._members:  # changes only when members leave
            self._members, self._log_every = members, self.log_every[members]
            self._same_log = bool((self._log_every == self._log_every[0]).all())
        if self._same_log and self._all_same(epochs):
            due = np.arange(len(members)) if epochs[0] % self._log_every[0] == 0 else _NONE
        else:
            due = np.flatnonzero(epochs % self._log_every == 0)
        full = False
        if due.size:
            for r, row in zip(due.tolist(), epoch_rows(due, epochs, metrics), strict=True):
                rec = self.live[members[r]].rec
                assert rec is not None
                rec.append_row(row)
                full = full or len(rec.buffered) >= FLUSH_ROWS
        flushed = self.last_flush
        due_now = time.monotonic() - self.last_flush >= self.heartbeat_s
        if self.finishing or self.checkpoints or full or due_now:
            self._flush(members)
        stop = [int(k) for k in members if self.live[k].stale] if self.any_stale else []
        if not self.stopping and self.should_stop is not None and self.should_stop():
            self.stopping = True
        if self.stopping:
            stop = [int(k) for k in members]
        elif self.pruner is not None:
            stop += self._prune(members, epochs, flushed != self.last_flush)
        return stop

    def _all_same(self, epochs: np.ndarray) -> bool:
        """All members at the same epoch (none was resumed from another epoch than the rest)."""
        if self._first_epochs is None:
            self._first_epochs = epochs
            self._same_epochs = bool((epochs == epochs[0]).all())
        return self._same_epochs

    def _on_checkpoint(self, k: int, state: TrainState) -> None:
        # A checkpoint at a run's last epoch is superseded by its final write right after.
        m = self.live[k]
        if state.epoch < int(m.config["epochs"]) and m.pacer.due():
            self.checkpoints[k] = state

    def _on_finish(self, k: int, history: History) -> None:
        m = self.live[k]
        m.history = history
        rec = m.rec
        assert rec is not None
        if history.epochs >= history.start_epoch:
            rec.last_epoch = history.epochs
            rec.last_metrics = history.metrics(history.epochs)
        if math.isfinite(history.best_loss):
            rec.best_loss = min(rec.best_loss, history.best_loss)
        if m.stale:
            m.status = m.job.after_stale()
            m.done = True
            return
        if history.outcome != "stopped" or m.pruned is not None:
            rec.add_last_epoch()
        self.finishing.append(k)

    # -- writes ---------------------------------------------------------------------------
    def _flush(self, running: np.ndarray | None = None) -> None:
        """One transaction: every running member's rows and heartbeat, the checkpoints taken,
        and the final writes of the members that finished. Members fenced out are marked
        stale (the engine stops them; their runs belong to someone else now)."""
        keep = set() if running is None else {int(k) for k in running}
        targets = sorted(keep | set(self.finishing) | set(self.checkpoints))
        targets = [k for k in targets if not self.live[k].done and not self.live[k].stale]
        finishing = [k for k in self.finishing if k in targets]
        checkpoints = {k: s for k, s in self.checkpoints.items() if k in targets}
        results: dict[int, str] = {}
        # Serialised before the transaction: on SQLite it holds the one write lock, which the
        # other processes of a local pool wait for (savez of every member's state inside it
        # made them wait about a third of their time; measured on 2 processes).
        checkpoint_rows = {k: self._checkpoint_row(k, s) for k, s in checkpoints.items()}
        weights_rows = {k: self._weights_row(k) for k in finishing}

        def body() -> set[int]:
            results.clear()
            with session_scope(self.url) as session:
                leases.bound_idle_transaction(session, self.idle_s)
                items = [
                    (self.live[k].run_id, self.live[k].attempt, self._rows(k)) for k in targets
                ]
                fenced_out = insert_epoch_rows_fenced_many(session.connection(), items)
                stale = {k for k in targets if self.live[k].run_id in fenced_out}
                # The fence above holds the row lock of every run that passed it until this
                # transaction ends: no claim or re-queue can change their attempt meanwhile,
                # so their other writes here need no fence of their own, and go in one
                # statement per table instead of two per run.
                ok = [k for k in targets if k not in stale]
                repo.upsert_by_run(
                    session, Checkpoint, [checkpoint_rows[k] for k in ok if k in checkpoint_rows]
                )
                done = [k for k in ok if k in finishing]
                repo.upsert_by_run(session, RunWeights, [weights_rows[k] for k in done])
                ended = [k for k in done if self._ended(self.live[k])]
                summaries = [self._summary(k) for k in ended]
                finished = [
                    (self.live[k].run_id, self.live[k].attempt, sm)
                    for k, sm in zip(ended, summaries, strict=True)
                ]
                if repo.finish_runs(session, finished):
                    results.update(
                        (k, sm["status"]) for k, sm in zip(ended, summaries, strict=True)
                    )
                for k in done:
                    if k in results:
                        continue
                    try:  # stopped members, or (never under the lock) a finish that missed
                        results[k] = self._final_write(session, self.live[k])
                    except StaleAttempt:
                        stale.add(k)
            return stale

        stale = with_retry(body, seconds=self.retry_s, what="population: recording")
        self.last_flush = time.monotonic()
        for k in targets:
            m = self.live[k]
            if k in stale:
                m.stale = self.any_stale = True
                if m.history is not None:  # already stopped: find out why, now
                    m.status = m.job.after_stale()
                    m.done = True
                continue
            m.rec.written()  # type: ignore[union-attr]
            m.checkpointed |= k in checkpoints
            if k in results:
                m.status = results[k]
                m.done = True
        self.checkpoints = {k: s for k, s in self.checkpoints.items() if k not in targets}
        self.finishing = [k for k in self.finishing if k not in targets]

    def _rows(self, k: int) -> list[tuple[Any, ...]]:
        rec = self.live[k].rec
        assert rec is not None
        return rec.buffered

    def _checkpoint_row(self, k: int, state: TrainState) -> dict[str, Any]:
        m, data = self.live[k], state.to_bytes()
        return {
            "run_id": m.run_id,
            "attempt": m.attempt,
            "epoch": int(state.epoch),
            "data": data,
            "sha256": sha256_hex(data),
        }

    def _weights_row(self, k: int) -> dict[str, Any]:
        """The final weights (a stopped member's exact state goes in as its checkpoint)."""
        m = self.live[k]
        h = m.history
        assert h is not None
        if h.outcome == "stopped" and m.pruned is None:
            return {}
        data, shapes, dtype, digest = pack_arrays([np.asarray(p) for p in m.net.params])
        return {
            "run_id": m.run_id,
            "data": data,
            "shapes": shapes,
            "dtype": dtype,
            "sha256": digest,
        }

    def _summary(self, k: int) -> dict[str, Any]:
        m = self.live[k]
        assert m.history is not None and m.rec is not None
        summary = final_summary(m.rec, m.history, time.perf_counter() - m.started)
        return {**summary, **self._pruned_fields(m)}

    def _final_write(self, session: Session, m: Member) -> str:
        """The member's summary (its weights are already in), or, when it was stopped, its
        exact state as a checkpoint and the run handed back to the queue. Fenced."""
        h = m.history
        assert h is not None and m.rec is not None
        if h.outcome == "stopped" and m.pruned is None:
            final = h.state
            repo.save_checkpoint(session, m.run_id, m.attempt, final.epoch, final.to_bytes())
            repo.release_run(session, m.run_id, m.attempt)
            return "queued"
        summary = final_summary(m.rec, h, time.perf_counter() - m.started)
        summary.update(self._pruned_fields(m))
        if not repo.finish_runs(session, [(m.run_id, m.attempt, summary)]):
            raise StaleAttempt(m.run_id, m.attempt)
        return str(summary["status"])

    # -- early stopping (service.pruning) ----------------------------------------------------
    @staticmethod
    def _ended(m: Member) -> bool:
        """Trained to its end or pruned: its summary is final (a stopped run goes back)."""
        return m.history.outcome != "stopped" or m.pruned is not None  # type: ignore[union-attr]

    @staticmethod
    def _pruned_fields(m: Member) -> dict[str, Any]:
        # A member that diverged, solved or completed in the epoch it was judged ends as that.
        return summary_fields(m.pruned if m.history.outcome == "stopped" else None)  # type: ignore[union-attr]

    def _prune_claimed(self, live: list[Member]) -> list[Member]:
        """Load the rule of the members' sweep; a run whose configuration a rule has already
        stopped (unit: config, decided elsewhere) finishes at once as pruned."""
        if not live:
            return live
        self.pruner, standing = Pruner.load(live, self.url, self.retry_s)
        if self.pruner is None:
            return live
        for k, decision in standing.items():
            m = live[k]
            m.pruned, m.done = decision, True
            m.status = finish_unstarted(m.job, m.checkpoint[0] if m.checkpoint else 0, decision)
        keep = [k for k in range(len(live)) if k not in standing]
        self.pruner.bind(keep, [live[k].run_id for k in keep])
        return [live[k] for k in keep]

    def _prune(self, members: np.ndarray, epochs: np.ndarray, flushed: bool) -> list[int]:
        """The members the rule stops now (after writing the rows it decides from)."""
        assert self.pruner is not None
        decided = self.pruner.check(members, epochs, lambda: self._flush(members), flushed)
        stop = [k for k in decided if not self.live[k].stale and not self.live[k].done]
        for k in stop:
            self.live[k].pruned = decided[k]
        return stop


__all__ = ["Member", "Population"]
