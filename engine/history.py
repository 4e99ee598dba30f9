"""History: what a training call did, per member; Records: a population's metric rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .state import TrainState

Array = np.ndarray
Metrics = dict[str, Any]


@dataclass
class History:
    """What a call to ``train`` did.

    Arrays cover epochs ``start_epoch .. epochs`` (``epochs`` is the number of the
    last epoch run; ``start_epoch`` is 1 unless resumed). ``accuracy`` is None when
    the task has none; ``val_*`` are None without a validation set.

    Early stopping (``engine.patience``, when the config has patience or restore_best):
    ``best_epoch`` is the epoch of the best monitored value (outcome "patience": the run
    stopped at best_epoch + patience). ``restored_best``: the net ends with the best epoch's
    weights (restore_best), whose metrics are ``best_metrics``; ``state`` is still the
    state after the last epoch run.
    """

    start_epoch: int
    epochs: int
    loss: Array
    max_error: Array
    accuracy: Array | None
    val_loss: Array | None
    val_accuracy: Array | None
    outcome: str
    solved_epoch: int | None
    best_loss: float
    state: TrainState
    best_epoch: int | None = None
    restored_best: bool = False
    best_metrics: Metrics | None = None

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1]) if len(self.loss) else math.nan

    @property
    def final_accuracy(self) -> float | None:
        if self.accuracy is None or not len(self.accuracy):
            return None
        return float(self.accuracy[-1])

    def metrics(self, epoch: int) -> Metrics:
        """The metrics dict that ``on_epoch`` received for ``epoch``."""
        i = epoch - self.start_epoch
        if not 0 <= i < len(self.loss):
            raise IndexError(f"epoch {epoch} not in {self.start_epoch}..{self.epochs}")
        out: Metrics = {
            "loss": float(self.loss[i]),
            "accuracy": None if self.accuracy is None else float(self.accuracy[i]),
            "max_error": float(self.max_error[i]),
        }
        if self.val_loss is not None:
            out["val_loss"] = float(self.val_loss[i])
            out["val_accuracy"] = None if self.val_accuracy is None else float(self.val_accuracy[i])
        return out


class Records:
    """Per-epoch metric arrays, kept as written: one (K,) array per metric and epoch.

    Between two compactions the running members do not change (a segment); a segment's
    arrays are stacked into (epochs, K) once, when it closes, not copied every epoch. A
    member that ran in one segment only gets a column view of it as its history (its
    metrics are (K,) apart in memory): copying K columns out costs as much as stacking.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.closed: list[tuple[Array, dict[str, Array]]] = []
        self.members: Array = np.empty(0, dtype=np.int64)
        self.rows: dict[str, list[Array]] = {}

    def open(self, members: Array) -> None:
        self.members = members
        self.rows = {name: [] for name in self.names}

    def write(self, values: dict[str, Array | None]) -> None:
        for name, rows in self.rows.items():
            rows.append(values[name])  # type: ignore[arg-type]

    def close(self) -> None:
        if self.rows and self.rows[self.names[0]]:
            # one concatenation of the (K,) rows: np.stack's per-row views cost twice as much
            arrays = {
                name: np.concatenate(rows).reshape(len(rows), -1)
                for name, rows in self.rows.items()
            }
            self.closed.append((self.members, arrays))
        self.rows = {}

    def member(self, name: str, k: int) -> Array | None:
        if name not in self.names:
            return None
        parts = []
        for members, arrays in self.closed:
            pos = int(np.searchsorted(members, k))
            if pos < len(members) and members[pos] == k:
                parts.append(arrays[name][:, pos])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0)
