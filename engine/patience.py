"""Per-run early stopping on a monitored value: ``patience``, ``min_delta``, ``restore_best``.

The semantics are Keras's EarlyStopping (scikit-learn's n_iter_no_change is the same idea):
an epoch *improves* when the monitored value (val_loss with a validation set, else loss) is
lower than the best so far by more than ``min_delta``; only an improving epoch becomes the
best epoch (a gain of min_delta or less neither counts nor moves the best value). A run stops
after ``patience`` epochs in a row without improvement, so it stops at best epoch + patience
(patience 0 = never). With ``restore_best`` the weights of the best epoch are kept, and a run
that ends by its own rules (completed, patience, solved, stop_loss; not diverged and not
stopped from outside) ends with them as its final weights.

``Tracker`` follows a single net on Python numbers, ``TrackerRows`` a population's running
members on arrays; both compute ``best - value > min_delta`` in float64, so a member of a
population decides exactly as its lone run. Their figures go into every TrainState (wait,
best value, best epoch, best weights and their epoch's metrics), so that a resumed run
decides as the uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Array = np.ndarray
Metrics = dict[str, Any]

# The metrics kept with the best weights, for a summary that describes the final weights.
METRIC_NAMES = ("loss", "accuracy", "max_error", "val_loss", "val_accuracy")


def tracks(config: Any) -> bool:
    """Whether ``config`` needs the monitored value followed at all."""
    return bool(config.patience) or bool(config.restore_best)


def restorable(outcome_name: str) -> bool:
    """The ends after which restore_best puts the best epoch's weights back: the run's own
    (a diverged run keeps what diverged; a stopped one is cancelled or pruned from outside)."""
    return outcome_name in ("completed", "patience", "solved", "stop_loss")


STATE_FIELDS = ("wait", "monitor_best", "best_epoch", "best_theta", "best_metrics")


def state_fields(state: Any) -> dict[str, Any]:
    """A TrainState's early-stopping fields, to carry over as they are (none without one)."""
    return {} if state is None else {name: getattr(state, name) for name in STATE_FIELDS}


class Tracker:
    """One net's early-stopping figures (``state``: the TrainState resumed from, or None)."""

    def __init__(self, config: Any, theta: Array, state: Any = None) -> None:
        self.patience = int(config.patience or 0)
        self.min_delta = float(config.min_delta)
        self.restore = bool(config.restore_best)
        self.wait, self.best, self.best_epoch = 0, math.inf, None
        self.best_theta: Array | None = None
        self.best_metrics: Metrics | None = None
        if state is not None:
            self.wait, self.best, self.best_epoch = state.wait, state.monitor_best, state.best_epoch
            self.best_metrics = state.best_metrics
            if state.best_theta is not None:
                self.best_theta = np.array(state.best_theta, dtype=theta.dtype)
        if self.restore and self.best_theta is None:
            self.best_theta = np.empty_like(theta)

    def after_epoch(self, epoch: int, value: float, metrics: Metrics, theta: Array) -> bool:
        """Follow ``epoch``'s monitored ``value``; True when the run is out of patience."""
        if self.best - value > self.min_delta:  # inf - inf and NaN compare False: no gain
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore:
                np.copyto(self.best_theta, theta)  # type: ignore[arg-type]
                self.best_metrics = {k: metrics.get(k) for k in METRIC_NAMES}
        else:
            self.wait += 1
        return self.patience > 0 and self.wait >= self.patience

    def fields(self) -> dict[str, Any]:
        """TrainState's early-stopping fields."""
        kept = self.restore and self.best_epoch is not None
        return {
            "wait": self.wait,
            "monitor_best": self.best,
            "best_epoch": self.best_epoch,
            "best_theta": self.best_theta.copy() if kept else None,  # type: ignore[union-attr]
            "best_metrics": dict(self.best_metrics) if kept and self.best_metrics else None,
        }

    def restore_into(self, theta: Array, outcome_name: str) -> bool:
        """Put the best weights into ``theta`` when restore_best applies; whether it did."""
        if not (self.restore and self.best_epoch is not None and restorable(outcome_name)):
            return False
        theta[...] = self.best_theta
        return True


class TrackerRows:
    """The early-stopping figures of a population's running members, rows aligned with the
    control's. Rows whose config tracks nothing never improve (min_delta NaN) and never
    stop (patience 0)."""

    def __init__(self, configs: Sequence[Any], states: Sequence[Any], theta: Array) -> None:
        K = len(configs)
        self.patience = np.array([int(c.patience or 0) for c in configs], dtype=np.int64)
        self.on = np.array([tracks(c) for c in configs])
        self.min_delta = np.array(
            [float(c.min_delta) if t else math.nan for c, t in zip(configs, self.on, strict=True)]
        )
        self.restore = np.array([bool(c.restore_best) for c in configs])
        self.any_restore = bool(self.restore.any())
        self.any_patience = bool((self.patience > 0).any())
        self.wait = np.zeros(K, dtype=np.int64)
        self.best = np.full(K, math.inf)
        self.best_epoch = np.full(K, -1, dtype=np.int64)
        self.best_theta = theta.copy() if self.any_restore else None
        self.best_metrics = {n: np.full(K, math.nan) for n in METRIC_NAMES}
        self.has_metric = {n: np.zeros(K, dtype=bool) for n in METRIC_NAMES}
        for r, s in enumerate(states):
            if s is None:
                continue
            self.wait[r], self.best[r] = s.wait, s.monitor_best
            self.best_epoch[r] = -1 if s.best_epoch is None else s.best_epoch
            if s.best_theta is not None and self.best_theta is not None:
                self.best_theta[r] = s.best_theta
            for n, v in (s.best_metrics or {}).items():
                if v is not None:
                    self.best_metrics[n][r], self.has_metric[n][r] = v, True

    def after_epoch(
        self, epochs: Array, value: Array, values: dict[str, Array | None], theta: Array
    ) -> Array | None:
        """Follow the epoch's monitored values; the rows out of patience (a bool mask), or
        None when there are none."""
        improved = self.best - value > self.min_delta  # NaN min_delta or value: False
        self.wait += self.on  # untracked rows keep 0, as their lone runs do
        if improved.any():
            rows = np.flatnonzero(improved)
            self.best[rows], self.best_epoch[rows], self.wait[rows] = value[rows], epochs[rows], 0
            if self.any_restore:
                kept = rows[self.restore[rows]]
                self.best_theta[kept] = theta[kept]  # type: ignore[index]
                for n in METRIC_NAMES:
                    column = values.get(n)
                    self.has_metric[n][kept] = column is not None
                    if column is not None:
                        self.best_metrics[n][kept] = column[kept]
        if not self.any_patience:
            return None
        out = (self.patience > 0) & (self.wait >= self.patience)
        return out if out.any() else None

    def fields(self, row: int) -> dict[str, Any]:
        """TrainState's early-stopping fields of ``row``: what ``Tracker.fields`` gives."""
        epoch = int(self.best_epoch[row])
        kept = bool(self.restore[row]) and epoch >= 0
        metrics = None
        if kept:
            metrics = {
                n: float(self.best_metrics[n][row]) if self.has_metric[n][row] else None
                for n in METRIC_NAMES
            }
        return {
            "wait": int(self.wait[row]),
            "monitor_best": float(self.best[row]),
            "best_epoch": None if epoch < 0 else epoch,
            "best_theta": self.best_theta[row].copy() if kept else None,  # type: ignore[index]
            "best_metrics": metrics,
        }

    def keep(self, rows: Array) -> None:
        for name in ("patience", "on", "min_delta", "restore", "wait", "best", "best_epoch"):
            setattr(self, name, getattr(self, name)[rows])
        if self.best_theta is not None:
            self.best_theta = self.best_theta[rows]
        self.best_metrics = {n: a[rows] for n, a in self.best_metrics.items()}
        self.has_metric = {n: a[rows] for n, a in self.has_metric.items()}
