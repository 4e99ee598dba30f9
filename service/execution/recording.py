"""A run's per-epoch rows, buffered and written in fenced batches (never one commit per epoch),
and its summary. The group executor (service.execution.group) decides when a batch goes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import repeat
from typing import Any

import numpy as np

from service import reliability
from service.db import leases
from service.db import repository as repo
from service.db.bulk import EPOCH_FIELDS

# A batch is written when it holds this many rows or when the heartbeat is due (see
# reliability.heartbeat_seconds: at most 1 s, at least four per lease). Every write renews the
# lease and, being fenced, is also how a worker learns that its run was cancelled or taken
# over; so a crash loses at most about a second of curve, and a cancel acts within a second
# (or one epoch, when epochs are slower than that).
FLUSH_ROWS = 1000


class EpochRecorder:
    """The epochs a run records (every ``log_every``-th and the last), until they are written.

    Every write goes through the repository's fencing, so a worker whose attempt is no longer
    the current one has its writes refused (``StaleAttempt``) instead of mixing into a newer
    attempt; rows stay buffered until the transaction that wrote them committed.
    """

    def __init__(
        self,
        run_id: int,
        attempt: int,
        *,
        best_loss: float = math.inf,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        # A write transaction stuck open (its process stopped) is ended after half a lease.
        self.idle_s = reliability.lease_seconds() / 2
        self._rows: list[tuple[Any, ...]] = []
        self.last_epoch: int | None = None
        self.last_metrics: dict[str, Any] | None = None
        self._last_recorded: int | None = None
        # The lowest finite loss so far (from the checkpoint's, when resumed): a cancelled run's
        # summary needs it, and the engine's History never comes back when training is cut off.
        self.best_loss = best_loss

    def add_last_epoch(self) -> None:
        """The last epoch is always recorded, whatever log_every says."""
        if self.last_epoch is not None and self._last_recorded != self.last_epoch:
            assert self.last_metrics is not None
            self.append(self.last_epoch, self.last_metrics)

    @property
    def buffered(self) -> list[tuple[Any, ...]]:
        """The rows not yet written (the live list: a population flushes many recorders at once)."""
        return self._rows

    def pending_rows(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def write(self, session: Any) -> None:
        """Write the buffered rows in the caller's transaction (fenced); call ``written()``
        once that transaction committed. Nothing is dropped if it does not."""
        leases.bound_idle_transaction(session, self.idle_s)
        repo.record_epochs(session, self.run_id, self.attempt, self._rows)

    def written(self) -> None:
        self._rows = []

    def append(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Buffer one epoch's row from its metrics ({key: number or None})."""
        values = (metrics.get(key) for key in EPOCH_FIELDS)
        self.append_row((int(epoch), *(None if v is None else float(v) for v in values)))

    def append_row(self, row: tuple[Any, ...]) -> None:
        """Buffer one row already laid out as (epoch, *EPOCH_FIELDS) of int and floats (see
        service.db.bulk.epoch_tuples): what the executor builds for the epochs that are due."""
        self._rows.append(row)
        self._last_recorded = row[0]


def epoch_rows(due: np.ndarray, epochs: np.ndarray, metrics: dict[str, Any]) -> Iterator[tuple]:
    """The rows (for EpochRecorder.append_row) of the population members at positions
    ``due``, from the per-member arrays of an epoch's metrics: laid out column by column,
    about 4 us a row cheaper than a dict per row checked and converted when written."""
    columns: list[Any] = [epochs[due].tolist()]
    for key in EPOCH_FIELDS:
        values = metrics.get(key)
        if values is None:
            columns.append(repeat(None))
        else:
            columns.append(values[due].astype(float, copy=False).tolist())
    return zip(*columns, strict=False)  # the columns of None repeat forever


def final_summary(recorder: EpochRecorder, history: Any, wall_time_s: float) -> dict[str, Any]:
    """The status and summary columns of a run that trained to its end (not stopped).

    ``history`` is the engine's History of this attempt; the recorder knows the last epoch
    and metrics even when the attempt resumed from a checkpoint. A run stopped by patience
    ends "succeeded" (Keras's EarlyStopping ends training normally) with ``stopped_epoch``.
    With restore_best its final weights are the best epoch's, and so are final_loss,
    accuracy and val_loss (they describe the weights kept); epochs_run stays the last epoch
    trained and best_loss the lowest training loss seen.
    """
    last = recorder.last_metrics or {}
    if history.restored_best and history.best_metrics is not None:
        last = history.best_metrics
    return {
        "status": "diverged" if history.outcome == "diverged" else "succeeded",
        "epochs_run": recorder.last_epoch if recorder.last_epoch is not None else history.epochs,
        "final_loss": _float(last.get("loss")),
        "best_loss": _float(history.best_loss),
        "accuracy": _float(last.get("accuracy")),
        "val_loss": _float(last.get("val_loss")),
        "solved_epoch": history.solved_epoch,
        "wall_time_s": wall_time_s,
        "best_epoch": history.best_epoch,
        "stopped_epoch": history.epochs if history.outcome == "patience" else None,
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
