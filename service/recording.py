"""Buffer a run's per-epoch metrics and write them in fenced batches, never one commit per epoch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.db import repository as repo
from service.db.session import session_scope

# A batch is written when it holds this many rows or is this old. The age bound keeps the
# heartbeat fresh (every flush refreshes it) and bounds what a crash loses to seconds of curve.
FLUSH_ROWS = 1000
FLUSH_SECONDS = 2.0

METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "max_error")


class EpochRecorder:
    """Collects the epochs a run records (every ``log_every``-th and the last) and writes them.

    Every write goes through the repository's fencing, so a worker whose attempt is no longer the
    current one has its writes refused (``StaleAttempt``) instead of mixing into a newer attempt.
    """

    def __init__(
        self,
        run_id: int,
        attempt: int,
        *,
        log_every: int = 1,
        url: str | None = None,
        should_stop: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.log_every = max(1, int(log_every))
        self.url = url
        self.should_stop = should_stop
        self._clock = clock
        self._rows: list[dict[str, Any]] = []
        self._last_flush = clock()
        self.last_epoch: int | None = None
        self.last_metrics: dict[str, Any] | None = None
        self._last_recorded: int | None = None

    def on_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """The engine's callback: keep the row if it is due, flush when the batch is full or old."""
        self.last_epoch = epoch
        self.last_metrics = metrics
        if epoch % self.log_every == 0:
            self._append(epoch, metrics)
        if len(self._rows) >= FLUSH_ROWS or self._clock() - self._last_flush >= FLUSH_SECONDS:
            self.flush()
        if self.should_stop is not None and self.should_stop():
            from engine import StopTraining

            raise StopTraining()

    def add_last_epoch(self) -> None:
        """The last epoch is always recorded, whatever log_every says."""
        if self.last_epoch is not None and self._last_recorded != self.last_epoch:
            assert self.last_metrics is not None
            self._append(self.last_epoch, self.last_metrics)

    def pending_rows(self) -> list[dict[str, Any]]:
        return list(self._rows)

    def flush(self, session: Any = None) -> None:
        """Write the buffered rows and refresh the heartbeat, in one transaction or ``session``."""
        rows, self._rows = self._rows, []
        self._last_flush = self._clock()
        if session is not None:
            repo.record_epochs(session, self.run_id, self.attempt, rows)
            return
        with session_scope(self.url) as s:
            if rows:
                repo.record_epochs(s, self.run_id, self.attempt, rows)
            else:
                repo.heartbeat(s, self.run_id, self.attempt)

    def _append(self, epoch: int, metrics: dict[str, Any]) -> None:
        row = {"epoch": int(epoch)}
        for key in METRIC_KEYS:
            value = metrics.get(key)
            row[key] = None if value is None else float(value)
        self._rows.append(row)
        self._last_recorded = epoch
