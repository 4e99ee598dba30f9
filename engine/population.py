"""Population training: K same-shape networks trained at once as one stacked computation.

``train_population(nets, X, Y, configs, rngs=...)`` gives each member exactly the History,
TrainState and final weights that ``train(nets[k], X, Y, configs[k], rng=rngs[k])`` gives
it alone: the same numbers bit for bit (see ``engine.stacked``), its own stopping (epochs,
stop_loss, solved, diverged, StopTraining from its callback, a stop asked by ``on_epochs``),
checkpoints and resume, all decided by ``engine.control`` as for ``train``. A member that
stops is compacted away and the others go on.

What members may differ in: initial weights (their nets), learning rate, momentum, weight
decay, decay and error margin, schedule, epochs and stop criteria (their configs), generator
(init and per-epoch shuffles), resume state. What they share: the data, the network shape
(layers, activations, cost, skip connections, masks), the optimizer and the batch size.

Why: small nets are dominated by per-call overhead (a 2-2-1 epoch is ~25 us of Python and
NumPy calls around a few flops); stacking K of them pays that overhead once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .config import TrainConfig
from .control import COMPLETED, NAMES, Control, PopulationCallback, StopTraining
from .history import History, Metrics, Records
from .metrics import accuracy_kind
from .network import Network
from .patience import TrackerRows, restorable, state_fields, tracks
from .stacked import same_shape
from .stacked_optimizer import StackedOptimizer
from .stacked_updates import StackedUpdates
from .state import TrainState
from .training import check_dtype, check_state_dtype, prepare_set, train

Array = np.ndarray

# on_epoch(member, epoch, metrics): one member's epoch, as train()'s on_epoch.
MemberCallback = Callable[[int, int, Metrics], None]

__all__ = ["MemberCallback", "PopulationCallback", "train_population"]


def _check(
    nets: Sequence[Network],
    configs: Sequence[TrainConfig],
    rngs: Sequence[Any],
    states: Sequence[TrainState | None] | None,
) -> None:
    K = len(nets)
    if K == 0:
        raise ValueError("a population needs at least one network")
    if len(configs) != K or len(rngs) != K or (states is not None and len(states) != K):
        raise ValueError("nets, configs, rngs (and states) must have one entry per member")
    if K > 1 and not getattr(nets[0], "stackable", True):
        raise ValueError(f"{nets[0]!r} trains alone: a population of these holds one net")
    for k, net in enumerate(nets):
        if not same_shape(nets[0], net):
            raise ValueError(f"member {k} has another shape than member 0: {net!r}")
        if not isinstance(rngs[k], np.random.Generator):
            raise TypeError("rngs must be numpy.random.Generator objects")
    c0 = configs[0]
    for k, cfg in enumerate(configs):
        check_dtype(nets[k], cfg)  # same shape includes the dtype: one dtype per population
        shared = (cfg.optimizer, cfg.batch_size, cfg.epoch_metrics)
        if shared != (c0.optimizer, c0.batch_size, c0.epoch_metrics):
            raise ValueError(
                f"member {k}: every member must share optimizer, batch_size and epoch_metrics "
                f"({c0.optimizer}, {c0.batch_size}, {c0.epoch_metrics}); got "
                f"({cfg.optimizer}, {cfg.batch_size}, {cfg.epoch_metrics})"
            )


def train_population(
    nets: Sequence[Network],
    X: Array,
    Y: Array,
    configs: Sequence[TrainConfig],
    *,
    rngs: Sequence[np.random.Generator],
    on_epoch: MemberCallback | None = None,
    on_epochs: PopulationCallback | None = None,
    validation: tuple[Array, Array] | None = None,
    states: Sequence[TrainState | None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int, TrainState], None] | None = None,
    on_finish: Callable[[int, History], None] | None = None,
) -> list[History]:
    """Train every ``nets[k]`` in place with ``configs[k]`` and ``rngs[k]``; one History each.

    Member k gets exactly what ``train(nets[k], X, Y, configs[k], rng=rngs[k], ...,
    state=states[k])`` gives. ``on_epoch(k, epoch, metrics)`` is train()'s callback with the
    member's index first (StopTraining stops that member only); ``on_epochs(members, epochs,
    metrics)`` is the cheap alternative for large populations: once per epoch with arrays
    aligned with the running ``members`` (member indices), returning the members to stop
    now (outcome "stopped"; a pruning decision, say).
    ``on_checkpoint(k, state)`` runs after every ``checkpoint_every``-th epoch of a member
    that goes on. ``states[k]`` (or None) resumes member k; members may be at different epochs.
    ``on_finish(k, history)`` runs as soon as member k has stopped (its net then holds its
    final weights), while the others go on: a caller can store a finished member's results
    without waiting for the slowest one. NaN or infinite X or Y: ValueError.
    """
    _check(nets, configs, rngs, states)
    if len(nets) == 1:
        # A population of one is a single net: train() gives it the same numbers (the
        # population's guarantee) at less than half the cost per epoch on small nets (XOR
        # 2-2-1: ~15 against ~34 us), and every lone run of a sweep comes this way.
        return [
            _alone(
                nets[0],
                X,
                Y,
                configs[0],
                rngs[0],
                on_epoch,
                on_epochs,
                validation,
                None if states is None else states[0],
                checkpoint_every,
                on_checkpoint,
                on_finish,
            )
        ]
    X, Y, kind, rows_sum_to_one = prepare_set(nets[0], X, Y, checkpoint_every, validation)
    run = _Population(nets, X, Y, configs, rngs, kind, rows_sum_to_one, validation)
    run.on_checkpoint, run.on_finish = on_checkpoint, on_finish
    run.restore(states)
    if run.start(checkpoint_every if on_checkpoint is not None else None):
        with np.errstate(all="ignore"):
            run.loop(on_epoch, on_epochs)
    return run.histories  # type: ignore[return-value]


def _alone(
    net: Network,
    X: Array,
    Y: Array,
    config: TrainConfig,
    rng: np.random.Generator,
    on_epoch: MemberCallback | None,
    on_epochs: PopulationCallback | None,
    validation: tuple[Array, Array] | None,
    state: TrainState | None,
    checkpoint_every: int | None,
    on_checkpoint: Callable[[int, TrainState], None] | None,
    on_finish: Callable[[int, History], None] | None,
) -> History:
    """Member 0 of a population of one, trained by ``train`` with the callbacks adapted."""
    history = train(
        net,
        X,
        Y,
        config,
        rng=rng,
        on_epoch=None if on_epoch is None else (lambda e, m: on_epoch(0, e, m)),
        validation=validation,
        state=state,
        checkpoint_every=checkpoint_every,
        on_checkpoint=None if on_checkpoint is None else (lambda st: on_checkpoint(0, st)),
        on_epochs=on_epochs,
    )
    if on_finish is not None:
        on_finish(0, history)
    return history


class _Population:
    """One call of train_population: the stacked members, their control and their records."""

    def __init__(
        self,
        nets: Sequence[Network],
        X: Array,
        Y: Array,
        configs: Sequence[TrainConfig],
        rngs: Sequence[np.random.Generator],
        kind: str | None,
        rows_sum_to_one: bool,
        validation: tuple[Array, Array] | None,
    ) -> None:
        self.nets, self.X, self.Y, self.configs, self.rngs = nets, X, Y, configs, rngs
        self.template, self.kind, self.rows_sum_to_one = nets[0], kind, rows_sum_to_one
        K0 = len(nets)
        self.opt_name = configs[0].optimizer
        self.theta = np.stack([net.theta for net in nets])
        self.opt = StackedOptimizer.zeros(self.opt_name, K0, self.theta.shape[1], self.theta.dtype)
        self.first = np.ones(K0, dtype=np.int64)
        self.best = np.full(K0, math.inf)
        self.solved = np.full(K0, -1, dtype=np.int64)
        self.validation, self.val_kind = validation, None
        names = ["loss", "max_error"] + (["accuracy"] if kind is not None else [])
        if validation is not None:
            self.Xv, self.Yv = self.template._check_xy(*validation)
            self.val_kind = accuracy_kind(self.template.output_activation, self.Yv)
            names += ["val_loss"] + (["val_accuracy"] if self.val_kind is not None else [])
        self.records = Records(names)
        self.histories: list[History | None] = [None] * K0
        self.states: list[TrainState | None] = [None] * K0
        self.on_checkpoint: Callable[[int, TrainState], None] | None = None
        self.on_finish: Callable[[int, History], None] | None = None

    def restore(self, states: Sequence[TrainState | None] | None) -> None:
        for k, state in enumerate(states or ()):
            self.states[k] = state
            if state is None:
                continue
            if state.optimizer != self.opt_name:
                raise ValueError(
                    f"member {k}: state was saved by optimizer {state.optimizer!r}, "
                    f"config has {self.opt_name!r}"
                )
            check_state_dtype(state, self.theta.dtype)
            self.nets[k].set_params(state.params)
            self.theta[k] = self.nets[k].theta
            self.opt.load_member(k, state.buffers)
            self.rngs[k].bit_generator.state = state.rng_state
            self.first[k] = state.epoch + 1
            self.best[k] = state.best_loss
            self.solved[k] = -1 if state.solved_epoch is None else state.solved_epoch

    def start(self, checkpoint_every: int | None) -> bool:
        """Finish the members with nothing left to run (train() returns at once for them),
        stack the others; False when none is left."""
        limit = np.array([c.epochs for c in self.configs], dtype=np.int64)
        counts = np.maximum(0, limit - self.first + 1)
        for k in np.flatnonzero(counts == 0).tolist():
            tracked = state_fields(self.states[k])
            self._finish(k, k, int(self.first[k] - 1), COMPLETED, self.theta, self.opt, tracked)
        members = np.flatnonzero(counts > 0)
        if members.size == 0:
            return False
        cfgs = [self.configs[k] for k in members.tolist()]
        tracking = None
        if any(tracks(c) for c in cfgs):
            states = [self.states[k] for k in members.tolist()]
            tracking = TrackerRows(cfgs, states, self.theta[members])
        self.control = Control(
            cfgs,
            members,
            self.first[members],
            self.best[members],
            self.solved[members],
            checkpoint_every,
            tracking,
        )
        val = None if self.validation is None else (self.Xv, self.Yv, self.val_kind)
        self.updates = StackedUpdates(
            self.template,
            self.X,
            self.Y,
            cfgs,
            self.kind,
            self.rows_sum_to_one,
            val,
            self.theta[members],
            self.opt.take(members),
            self.rngs,
        )
        self.records.open(members)
        return True

    def loop(self, on_epoch: MemberCallback | None, on_epochs: PopulationCallback | None) -> None:
        control, records, updates = self.control, self.records, self.updates
        on_checkpoint = self.on_checkpoint
        while True:
            epochs = control.epochs()
            updates.values_at(epochs)
            loss, acc, max_err = updates.epoch(control.members)
            values: dict[str, Array | None] = {"loss": loss, "accuracy": acc, "max_error": max_err}
            if updates.val_scorer is not None:
                vloss, vacc, _ = updates.val_scorer.score(updates.stack)
                values["val_loss"], values["val_accuracy"] = vloss, vacc
            records.write(values)
            stop: list[int] = []
            if on_epoch is not None:
                stop = _call_members(on_epoch, control.members, epochs, values)
            if on_epochs is not None:
                asked = on_epochs(control.members, epochs, values)
                if asked:
                    wanted = np.fromiter(asked, dtype=np.int64)
                    stop += np.flatnonzero(np.isin(control.members, wanted)).tolist()
            theta = updates.stack.theta
            outcome, due = control.after_epoch(epochs, loss, max_err, theta, stop, values)
            if due and on_checkpoint is not None:
                for r in due:
                    k, tracked = int(control.members[r]), control.tracked_fields(r)
                    best, solved = control.best[r], control.solved[r]
                    state = self._snapshot(k, r, int(epochs[r]), theta, updates.opt, best, solved)
                    on_checkpoint(k, replace(state, **tracked))  # + early-stopping fields
            if outcome is not None and outcome.any() and not self._compact(outcome, epochs):
                return

    def _compact(self, outcome: Array, epochs: Array) -> bool:
        """Finished members leave the stack, the others go on; False when none is left."""
        control, updates = self.control, self.updates
        theta, opt = updates.stack.theta, updates.opt
        self.records.close()
        members = control.members
        self.best[members], self.solved[members] = control.best, control.solved
        for r in np.flatnonzero(outcome).tolist():
            code, tracked = int(outcome[r]), control.tracked_fields(r)
            self._finish(int(members[r]), r, int(epochs[r]), code, theta, opt, tracked)
        keep = np.flatnonzero(outcome == 0)
        if not keep.size:
            return False
        control.keep(keep)
        updates.keep(keep)
        self.records.open(control.members)
        return True

    def _snapshot(
        self,
        k: int,
        row: int,
        epoch: int,
        theta: Array,
        opt: StackedOptimizer,
        best: float,
        solved: int,
    ) -> TrainState:
        net = self.nets[k]
        net.theta[...] = theta[row]
        return TrainState(
            epoch=epoch,
            params=[p.copy() for p in net.params],
            optimizer=self.opt_name,
            buffers=opt.member_buffers(row),
            rng_state=dict(self.rngs[k].bit_generator.state),
            best_loss=best,
            solved_epoch=None if solved < 0 else solved,
        )

    def _finish(
        self,
        k: int,
        row: int,
        last: int,
        code: int,
        theta: Array,
        opt: StackedOptimizer,
        tracked: dict[str, Any],
    ) -> None:
        """Member k's History (its net left with its final weights); ``tracked``: its
        early-stopping figures, as TrainState fields."""
        best, solved, records = float(self.best[k]), int(self.solved[k]), self.records
        history = History(
            start_epoch=int(self.first[k]),
            epochs=last,
            loss=records.member("loss", k),  # type: ignore[arg-type]
            max_error=records.member("max_error", k),  # type: ignore[arg-type]
            accuracy=records.member("accuracy", k),
            val_loss=records.member("val_loss", k),
            val_accuracy=records.member("val_accuracy", k),
            outcome=NAMES[code],
            solved_epoch=None if solved < 0 else solved,
            best_loss=best,
            state=replace(self._snapshot(k, row, last, theta, opt, best, solved), **tracked),
        )
        if tracks(self.configs[k]):
            history.best_epoch = tracked.get("best_epoch")
            kept = tracked.get("best_theta")
            if kept is not None and restorable(history.outcome):  # restore_best
                self.nets[k].theta[...] = kept
                history.restored_best, history.best_metrics = True, tracked["best_metrics"]
        self.histories[k] = history
        if self.on_finish is not None:
            self.on_finish(k, history)


def _call_members(
    on_epoch: MemberCallback, members: Array, epochs: Array, values: dict[str, Array | None]
) -> list[int]:
    """train()'s on_epoch for every running member; the rows that raised StopTraining."""
    cols = {k: (None if v is None else v.tolist()) for k, v in values.items()}
    loss, acc, max_err = cols["loss"], cols["accuracy"], cols["max_error"]
    has_val = "val_loss" in cols
    stop = []
    for r, k in enumerate(members.tolist()):
        metrics: Metrics = {
            "loss": loss[r],  # type: ignore[index]
            "accuracy": None if acc is None else acc[r],
            "max_error": max_err[r],  # type: ignore[index]
        }
        if has_val:
            metrics["val_loss"] = cols["val_loss"][r]  # type: ignore[index]
            vacc = cols.get("val_accuracy")
            metrics["val_accuracy"] = None if vacc is None else vacc[r]
        try:
            on_epoch(k, int(epochs[r]), metrics)
        except StopTraining:
            stop.append(r)
    return stop
