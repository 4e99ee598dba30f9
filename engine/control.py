"""The per-epoch control: after every epoch, what happens next to each member.

Both training loops use it: ``train`` (a single net is a population of one) and
``train_population``. After an epoch's updates and metrics the control decides, for
every running member, in this order:

1. the epoch's own metrics (``Rule.judge``): a non-finite loss or a non-finite sum of the
   weights ends the member "diverged"; else the best loss is kept, a member whose every
   output is within ``stop_within`` of its target is solved at that epoch (and stops
   "solved" under ``stop_on_solve``), a loss below ``stop_loss`` stops it "stop_loss";
   then early stopping (``engine.patience``, when the config asks for it): the monitored
   value (val_loss with a validation set, else loss) is followed, and a member out of
   patience stops "patience";
2. the caller, through its callbacks: ``on_epoch`` raising ``StopTraining`` (cancel), or
   ``on_epochs`` returning members to stop now (a pruning decision): "stopped", unless the
   metrics already ended the member;
3. a member that goes on gets a checkpoint after every ``checkpoint_every``-th epoch;
4. a member that reached its ``epochs`` ends "completed".

The callbacks run before the decision (they see only the metrics, never the control's
state), so a loop calls them first and passes on what they asked; the precedence above
holds all the same. Before an epoch the control gives the learning rate and momentum in
force (``phase``, ``Phases``: the schedule). No I/O: the caller answers through callbacks.

``One`` decides for a single net on Python numbers (``train``'s loop pays no array
operation for it); ``Control`` decides for a population's running members. A population's
common epoch (all finite, nobody stops) must cost a few whole-array operations, not K
calls: ``Control`` first screens the members with whole-array tests that are true whenever
``Rule.judge`` could decide anything for a member (non-finite numbers, max_error below an
unsolved member's stop_within, loss below its stop_loss) and asks the rule for the
screened members only. Either way the rule is the one written in ``Rule.judge``.

API for a caller (the service's pruning, say): ``on_epochs(members, epochs, metrics)``,
accepted by ``train`` and ``train_population`` alike (``PopulationCallback``), sees every
running member's metrics of the epoch as arrays and returns the members to stop now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .patience import Tracker, TrackerRows
from .schedule import values_at

Array = np.ndarray
Metrics = dict[str, Any]

# Outcome codes (0: the member goes on) and their names in History.outcome.
GO_ON, DIVERGED, SOLVED, STOP_LOSS, STOPPED, COMPLETED, PATIENCE = 0, 1, 2, 3, 4, 5, 6
NAMES = {
    DIVERGED: "diverged",
    SOLVED: "solved",
    STOP_LOSS: "stop_loss",
    STOPPED: "stopped",
    COMPLETED: "completed",
    PATIENCE: "patience",
}
OUTCOMES = ("completed", "stop_loss", "solved", "diverged", "stopped", "patience")

# on_epochs(members, epochs, metrics): every running member's epoch at once, arrays aligned
# with ``members`` (member indices; accuracy/val_* arrays or None); returns the members to
# stop now (outcome "stopped"), or None.
PopulationCallback = Callable[[Array, Array, dict[str, Array | None]], Collection[int] | None]


# bound once: the single net's loop calls One.after_epoch every epoch
_isfinite, _add_reduce = math.isfinite, np.add.reduce


class StopTraining(Exception):  # noqa: N818 - the name is the public contract
    """Raise inside ``on_epoch`` to stop training (outcome "stopped")."""


@dataclass(frozen=True)
class Rule:
    """One member's stop criteria, from its TrainConfig."""

    epochs: int
    stop_within: float | None
    stop_loss: float | None
    stop_on_solve: bool

    @classmethod
    def of(cls, config: Any) -> Rule:
        return cls(config.epochs, config.stop_within, config.stop_loss, config.stop_on_solve)

    def judge(
        self, epoch: int, loss: float, max_err: float, finite: bool, solved: int | None
    ) -> tuple[int, int | None]:
        """(outcome code, solved epoch) that the epoch's own metrics decide."""
        if not finite:
            return DIVERGED, solved
        outcome = GO_ON
        if self.stop_within is not None and solved is None and max_err < self.stop_within:
            solved = epoch
            if self.stop_on_solve:
                outcome = SOLVED
        if outcome == GO_ON and self.stop_loss is not None and loss < self.stop_loss:
            outcome = STOP_LOSS
        return outcome, solved


class Phases:
    """The learning rate and momentum in force, member by member, from their schedules.

    ``changes(epochs)`` gives the rows whose values change at these epochs and updates
    ``lr`` and ``mom`` for them; ``valid`` holds, per row, the last epoch through which its
    values are sure to hold (a float: infinite after a member's last phase).
    """

    def __init__(self, configs: Sequence[Any]) -> None:
        self.configs = list(configs)
        self.lr = np.array([c.learning_rate for c in configs], dtype=np.float64)
        self.mom = np.array([c.momentum for c in configs], dtype=np.float64)
        # -1: values not yet looked up; inf: no schedule, the base values hold throughout
        self.valid = np.array([-1.0 if c.schedule else math.inf for c in configs])
        self.any = bool(np.isfinite(self.valid).any())

    def changes(self, epochs: Array) -> list[int]:
        if not self.any:
            return []
        rows = np.flatnonzero(epochs > self.valid).tolist()
        for r in rows:
            self.lr[r], self.mom[r], self.valid[r] = phase(self.configs[r], int(epochs[r]))
        return rows

    def keep(self, rows: Array) -> None:
        self.configs = [self.configs[r] for r in rows.tolist()]
        self.lr, self.mom, self.valid = self.lr[rows], self.mom[rows], self.valid[rows]


def phase(config: Any, epoch: int) -> tuple[float, float, float]:
    """(learning rate, momentum) in force during ``epoch``, and the last epoch through which
    they are sure to hold (infinite after the last phase)."""
    lr, mom = values_at(config.schedule, epoch, config.learning_rate, config.momentum)
    for p in config.schedule:
        if epoch <= p.until:
            return lr, mom, float(p.until)
    return lr, mom, math.inf


def sums_finite(theta: Array) -> bool:
    """True when every member's sum(theta) (the divergence test) is surely finite: no
    inf/nan, and too small for any order of summation to overflow. One ddot over the whole
    (K, P) array instead of K row sums: a finite sum of squares bounds every |w| by
    sqrt(max float) ~ 1.3e154 (float32: 1.8e19), so a row of P < 1e150 (float32: 1e19) of
    them cannot overflow (and an inf/nan makes the sum inf/nan). When False the caller does
    the exact row sums."""
    flat = theta.reshape(-1)
    return math.isfinite(float(np.dot(flat, flat)))


class One:
    """The control of a single net (a population of one), on Python numbers: the loop of
    ``train`` pays no array operations for it."""

    def __init__(
        self,
        config: Any,
        best: float,
        solved: int | None,
        checkpoint_every: int | None,
        tracker: Tracker | None = None,
    ) -> None:
        self.rule = Rule.of(config)
        self.best, self.solved = best, solved
        self.every = checkpoint_every or 0
        self.tracker = tracker  # early stopping, when the config asks for it

    def after_epoch(
        self,
        epoch: int,
        loss: float,
        max_err: float,
        theta: Array,
        stop: bool,
        monitored: float = math.nan,
        metrics: Metrics | None = None,
    ) -> tuple[int, bool]:
        """(outcome code, whether a checkpoint is due) after ``epoch``; ``stop``: the
        caller's callbacks asked to stop; ``monitored``, ``metrics``: the value early
        stopping follows and the epoch's metrics (needed with a tracker only)."""
        finite = _isfinite(loss) and _isfinite(_add_reduce(theta))
        if finite and loss < self.best:
            self.best = loss
        code, self.solved = self.rule.judge(epoch, loss, max_err, finite, self.solved)
        tracker = self.tracker
        out = tracker is not None and tracker.after_epoch(epoch, monitored, metrics or {}, theta)
        if out and code == GO_ON:
            code = PATIENCE
        if stop and code == GO_ON:
            code = STOPPED
        due = code == GO_ON and self.every > 0 and epoch % self.every == 0
        if code == GO_ON and epoch >= self.rule.epochs:
            code = COMPLETED
        return code, due


class Control:
    """The control of the running members of a population, rows aligned with ``members``.

    ``best`` and ``solved`` (-1: not solved) are the members' running figures; ``keep``
    compacts every per-row array when members leave.
    """

    def __init__(
        self,
        configs: Sequence[Any],
        members: Array,
        first: Array,
        best: Array,
        solved: Array,
        checkpoint_every: int | None,
        tracking: TrackerRows | None = None,
    ) -> None:
        self.rules = [Rule.of(c) for c in configs]
        self.tracking = tracking  # early stopping, when some member's config asks for it
        self.members, self.first = members, first
        self.best, self.solved = best, solved
        self.limit = np.array([r.epochs for r in self.rules], dtype=np.int64)
        self.every = checkpoint_every or 0
        # screens: nan where the criterion cannot fire (none, or solved already)
        self.within = np.array([_nan_if_none(r.stop_within) for r in self.rules])
        self.within[solved >= 0] = math.nan
        self.stop_loss = np.array([_nan_if_none(r.stop_loss) for r in self.rules])
        self.it = 0  # epochs run since the start: epoch = first + it for every row
        self._refresh()

    def _refresh(self) -> None:
        self.any_within = not np.isnan(self.within).all()
        self.any_stop_loss = not np.isnan(self.stop_loss).all()
        # no member reaches its last epoch before this many epochs have run
        left = self.limit - self.first
        self.first_limit_it = int(left.min()) if left.size else 0
        # row r's checkpoint epochs first + it fall on it = -first (mod every): an epoch
        # whose it % every is none of these is no row's, and costs no array test
        every = self.every
        self.due_at = set(((-self.first) % every).tolist()) if every else set()

    def epochs(self) -> Array:
        """Each running member's number for the epoch about to run."""
        return self.first + self.it

    def after_epoch(
        self,
        epochs: Array,
        loss: Array,
        max_err: Array,
        theta: Array,
        stop: Collection[int],
        values: dict[str, Array | None] | None = None,
    ) -> tuple[Array | None, list[int]]:
        """(outcome codes, or None when every member goes on; rows due a checkpoint).

        ``stop``: the rows whose callbacks asked to stop this epoch; ``values``: the epoch's
        metric arrays (early stopping follows val_loss when there is one, else loss).
        """
        outcome = self._judge(epochs, loss, max_err, theta)
        if self.tracking is not None:
            vals = values or {}
            val_loss = vals.get("val_loss")
            out = self.tracking.after_epoch(
                epochs, loss if val_loss is None else val_loss, vals, theta
            )
            if out is not None:
                if outcome is None:
                    outcome = np.zeros(len(epochs), dtype=np.int8)
                outcome[out & (outcome == GO_ON)] = PATIENCE
        last = self.it >= self.first_limit_it  # some member may have reached its epochs
        if outcome is None and (stop or last):
            outcome = np.zeros(len(epochs), dtype=np.int8)
        if stop:
            rows = np.fromiter(stop, dtype=np.int64)
            outcome[rows[outcome[rows] == GO_ON]] = STOPPED  # type: ignore[index]
        due: list[int] = []
        if self.every and self.it % self.every in self.due_at:
            ready = epochs % self.every == 0
            if outcome is not None:
                ready &= outcome == GO_ON
            due = np.flatnonzero(ready).tolist()
        if last:
            outcome[(outcome == GO_ON) & (epochs >= self.limit)] = COMPLETED  # type: ignore[index]
        self.it += 1
        return outcome, due

    def _judge(self, epochs: Array, loss: Array, max_err: Array, theta: Array) -> Array | None:
        """Step 1 for every row; None when no member's metrics decide anything."""
        ok: Array | None = None
        theta_ok = sums_finite(theta)
        if math.isfinite(float(np.add.reduce(loss))) and theta_ok:  # finite sum: no inf/nan
            np.minimum(self.best, loss, out=self.best)  # = "if loss < best: best = loss"
            screened: Array | None = None
        else:
            ok = np.isfinite(loss)
            if not theta_ok:
                ok &= np.isfinite(np.add.reduce(theta, axis=1))
            np.minimum(self.best, loss, out=self.best, where=ok & (loss < self.best))
            screened = ~ok
        if self.any_within:
            near = max_err < self.within  # nan within: never
            screened = near if screened is None else screened | near
        if self.any_stop_loss:
            near = loss < self.stop_loss
            screened = near if screened is None else screened | near
        if screened is None or not screened.any():
            return None
        outcome = np.zeros(len(epochs), dtype=np.int8)
        for r in np.flatnonzero(screened).tolist():
            before = int(self.solved[r])
            code, solved = self.rules[r].judge(
                int(epochs[r]),
                float(loss[r]),
                float(max_err[r]),
                ok is None or bool(ok[r]),
                None if before < 0 else before,
            )
            outcome[r] = code
            if solved is not None and before < 0:
                self.solved[r] = solved
                self.within[r] = math.nan
        self._refresh()
        return outcome

    def tracked_fields(self, row: int) -> dict[str, Any]:
        """The TrainState early-stopping fields of ``row`` (none when nothing tracks)."""
        return {} if self.tracking is None else self.tracking.fields(row)

    def keep(self, rows: Array) -> None:
        """Only the members in ``rows`` go on."""
        self.rules = [self.rules[r] for r in rows.tolist()]
        if self.tracking is not None:
            self.tracking.keep(rows)
        for name in ("members", "first", "best", "solved", "limit", "within", "stop_loss"):
            setattr(self, name, getattr(self, name)[rows])
        self._refresh()


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
