"""The training loop of one net: epochs of updates, per-epoch metrics, stopping, resuming.

Per epoch: the updates (one per batch), then the metrics of the network *after*
them. With full batches the forward pass that gives those metrics is also the
one the next epoch's gradient starts from: one forward and one backward pass
per epoch. ``epoch_metrics="running"`` instead sums the metrics over the epoch's
own forward passes, as scikit-learn and Keras report a training loss: no extra
pass with mini-batches, the weights before the update with a full batch.

What happens after each epoch (stop, checkpoint, schedule phase) is decided by
``engine.control``, the same control ``train_population`` uses.

Resuming: ``train(..., state=s)`` restores weights, optimizer buffers and the
generator, and produces exactly the numbers the uninterrupted run produces from
epoch ``s.epoch + 1`` on (its History covers those epochs only; the caller holds
the earlier ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .config import EPOCH_METRICS, TrainConfig
from .control import (
    NAMES,
    OUTCOMES,
    One,
    PopulationCallback,
    StopTraining,
    phase,
)
from .history import History, Metrics
from .metrics import Scorer, accuracy_kind
from .network import Network, Workspace
from .optimizers import Optimizer, make_optimizer
from .patience import Tracker, tracks
from .state import TrainState

Array = np.ndarray

__all__ = [
    "EPOCH_METRICS",
    "OUTCOMES",
    "History",
    "Metrics",
    "StopTraining",
    "TrainConfig",
    "prepare_set",
    "shrink_factors",
    "train",
]


def _snapshot(
    net: Network, opt: Optimizer, rng: np.random.Generator, epoch: int, control: One
) -> TrainState:
    return TrainState(
        epoch=epoch,
        params=[p.copy() for p in net.params],
        optimizer=opt.name,
        buffers={k: v.copy() for k, v in opt.buffers.items()},
        rng_state=dict(rng.bit_generator.state),
        best_loss=control.best,
        solved_epoch=control.solved,
        **({} if control.tracker is None else control.tracker.fields()),
    )


def _restore(state: TrainState, net: Network, opt: Optimizer, rng: np.random.Generator) -> None:
    if state.optimizer != opt.name:
        raise ValueError(
            f"state was saved by optimizer {state.optimizer!r}, config has {opt.name!r}"
        )
    check_state_dtype(state, net.dtype)
    net.set_params(state.params)
    opt.load_buffers(state.buffers)
    rng.bit_generator.state = state.rng_state


def _require_finite(name: str, a: Array) -> None:
    """A NaN or infinity in the data would make every number after it NaN: refuse it."""
    bad = ~np.isfinite(a)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s), the first at row {row}, "
            f"column {col} ({a[row, col]}); the engine trains on finite numbers only"
        )


def check_dtype(net: Network, config: TrainConfig) -> None:
    """The net must be built in the config's dtype (Network(..., dtype=config.dtype))."""
    if net.dtype.name != config.dtype:
        raise ValueError(
            f"config has dtype {config.dtype!r} but the network computes in {net.dtype.name!r}: "
            f"build it with Network(..., dtype={config.dtype!r})"
        )


def check_state_dtype(state: TrainState, dtype: np.dtype) -> None:
    """A run resumes in the dtype it was saved in: another would round its weights."""
    saved = {np.asarray(p).dtype for p in state.params}
    if saved and saved != {dtype}:
        names = ", ".join(sorted(d.name for d in saved))
        raise ValueError(f"the state holds {names} weights, the network is {dtype.name}")


def prepare_set(
    net: Network,
    X: Array,
    Y: Array,
    checkpoint_every: int | None,
    validation: tuple[Array, Array] | None = None,
) -> tuple[Array, Array, str | None, bool]:
    """Checked, contiguous (X, Y) for ``net``, their accuracy kind, and whether every target
    row sums to 1 (the softmax + cross-entropy shortcut); shared by train and
    train_population, which must judge a set alike. Refuses NaN or infinite values in X, Y
    and the validation pair."""
    X, Y = net._check_xy(X, Y)
    X, Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    if X.shape[0] == 0:
        raise ValueError("cannot train on an empty set")
    _require_finite("X", X)
    _require_finite("Y", Y)
    if validation is not None:
        Xv, Yv = net._check_xy(*validation)
        _require_finite("validation X", Xv)
        _require_finite("validation Y", Yv)
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError("checkpoint_every must be >= 1")
    kind = accuracy_kind(net.output_activation, Y)
    rows_sum_to_one = bool(np.allclose(Y.sum(axis=1), 1.0, rtol=0.0, atol=1e-12))
    return X, Y, kind, rows_sum_to_one


class _Rows:
    """The per-epoch metric arrays of one call, and the validation scorer."""

    def __init__(
        self, net: Network, count: int, kind: str | None, validation: tuple[Array, Array] | None
    ) -> None:
        self.loss = np.empty(count)
        self.max_error = np.empty(count)
        self.accuracy = np.empty(count) if kind is not None else None
        self.val = None
        self.val_loss = self.val_accuracy = None
        if validation is not None:
            Xv, Yv = net._check_xy(*validation)
            self.val = Scorer(net, Xv, Yv, accuracy_kind(net.output_activation, Yv))
            self.val_loss = np.empty(count)
            self.val_accuracy = np.empty(count) if self.val.kind is not None else None

    def write(self, i: int, loss: float, acc: float | None, max_err: float) -> Metrics:
        """Store epoch row ``i`` (validation scored now) and return on_epoch's metrics."""
        self.loss[i] = loss
        self.max_error[i] = max_err
        metrics: Metrics = {"loss": loss, "accuracy": acc, "max_error": max_err}
        if self.accuracy is not None:
            self.accuracy[i] = acc
        if self.val is not None:
            vloss, vacc, _ = self.val.score()
            metrics["val_loss"] = vloss
            metrics["val_accuracy"] = vacc
            self.val_loss[i] = vloss  # type: ignore[index]
            if self.val_accuracy is not None:
                self.val_accuracy[i] = vacc
        return metrics

    def history(self, first: int, last: int, outcome: int, state: TrainState) -> History:
        ran = last - first + 1
        cut = lambda a: None if a is None else a[:ran]  # noqa: E731
        return History(
            start_epoch=first,
            epochs=last,
            loss=self.loss[:ran],
            max_error=self.max_error[:ran],
            accuracy=cut(self.accuracy),
            val_loss=cut(self.val_loss),
            val_accuracy=cut(self.val_accuracy),
            outcome=NAMES[outcome],
            solved_epoch=state.solved_epoch,
            best_loss=state.best_loss,
            state=state,
        )


class _Updates:
    """One net's buffers and the updates of one epoch, full batch or mini-batches."""

    def __init__(
        self,
        net: Network,
        X: Array,
        Y: Array,
        config: TrainConfig,
        kind: str | None,
        rows_sum_to_one: bool,
        opt: Optimizer,
    ) -> None:
        self.net, self.X, self.Y, self.opt = net, X, Y, opt
        self.rows_sum_to_one = rows_sum_to_one
        self.running = config.epoch_metrics == "running"
        self.weight_decay = config.weight_decay
        n = self.n = X.shape[0]
        batch = self.batch = config.batch_size
        self.full = batch is None or batch >= n
        if self.full:
            self.ws = Workspace(net, n)
            self.scorer = Scorer(net, X, Y, kind, ws=self.ws)
        else:
            assert batch is not None  # for the type checker: not full means a batch size
            self.ws_batch = Workspace(net, batch)
            self.ws_rest = Workspace(net, n % batch) if n % batch else self.ws_batch
            self.scorer = Scorer(net, X, Y, kind)
            self.xb = np.empty((batch, X.shape[1]), dtype=X.dtype)
            self.yb = np.empty((batch, Y.shape[1]), dtype=Y.dtype)
            self.xr, self.yr = self.xb[: n % batch], self.yb[: n % batch]
        self.decay_tmp = np.empty_like(net.theta) if self.weight_decay > 0 else None
        self.margin = config.error_margin
        self.shrink = shrink_factors(net, config)
        self.set_rate(config.learning_rate, config.momentum)

    def set_rate(self, lr: float, mom: float) -> None:
        """The values in force. sgd and nesterov take -eps dE/dw: the output deltas are
        scaled by ``factor`` instead of the gradient (see engine.optimizers); weight
        decay's lambda w likewise."""
        self.lr, self.mom = lr, mom
        fold = self.opt.folds_learning_rate
        self.factor = -lr if fold else 1.0
        self.decay = None
        if self.weight_decay > 0:
            self.decay = self.weight_decay * self.net.weight_indicator
            if fold:
                self.decay *= self.factor

    def start(self) -> None:
        """With a full batch the first gradient starts from this forward pass."""
        if self.full:
            self.net.run(self.ws)
            np.subtract(self.ws.out, self.ws.y, out=self.ws.diff)

    def full_epoch(self, rng: np.random.Generator) -> tuple[float, float | None, float]:
        net, ws, scorer, running, decay = self.net, self.ws, self.scorer, self.running, self.decay
        if running:  # the weights this epoch starts from; also leaves ws.diff
            metrics = scorer.score(run=False)
        net.output_delta(ws, self.rows_sum_to_one, self.factor, self.margin)
        net.backprop(ws)
        if decay is not None:
            net.grad += np.multiply(net.theta, decay, out=self.decay_tmp)
        self.opt.step(net.theta, net.grad, self.lr, self.mom)
        if self.shrink is not None:
            net.theta *= self.shrink
        net.run(ws)
        return metrics if running else scorer.score(run=False)

    def batch_epoch(self, rng: np.random.Generator) -> tuple[float, float | None, float]:
        net, X, Y, n, batch = self.net, self.X, self.Y, self.n, self.batch
        theta, grad, decay, step = net.theta, net.grad, self.decay, self.opt.step
        rows_sum_to_one, factor, lr, mom = self.rows_sum_to_one, self.factor, self.lr, self.mom
        margin, shrink = self.margin, self.shrink
        sums = self.scorer.running_sums() if self.running else None
        perm = rng.permutation(n)
        for start in range(0, n, batch):  # type: ignore[arg-type]
            idx = perm[start : start + batch]  # type: ignore[operator]
            w = self.ws_batch if len(idx) == batch else self.ws_rest
            # gather whole rows into contiguous buffers (np.take into the strided
            # input block would be buffered, twice slower), then copy them in
            rows_x, rows_y = (self.xb, self.yb) if w is self.ws_batch else (self.xr, self.yr)
            np.take(X, idx, axis=0, out=rows_x, mode="clip")
            w.load_x(rows_x)
            np.take(Y, idx, axis=0, out=rows_y, mode="clip")
            np.copyto(w.y, rows_y.T)
            net.run(w)
            if sums is not None:
                sums.add(w, idx)  # also leaves w.diff
            else:
                np.subtract(w.out, w.y, out=w.diff)
            net.output_delta(w, rows_sum_to_one, factor, margin)
            net.backprop(w)
            if decay is not None:
                grad += np.multiply(theta, decay, out=self.decay_tmp)
            step(theta, grad, lr, mom)
            if shrink is not None:
                theta *= shrink
        return self.scorer.score() if sums is None else sums.result()


def shrink_factors(net: Network, config: TrainConfig) -> Array | None:
    """What every parameter is multiplied by after each weight change (``decay``, the
    paper's direct decrement): 1 - decay, and 1 on the biases unless ``decay_biases``;
    None without decay. A population's member gets the same numbers (x * 1.0 is x)."""
    if config.decay == 0.0:
        return None
    on = np.ones_like(net.theta) if config.decay_biases else net.weight_indicator
    return 1.0 - config.decay * on


def _as_population(on_epochs: PopulationCallback) -> Callable[[int, Metrics], bool]:
    """A population callback asked about the single net as member 0 of a population of one."""
    member = np.zeros(1, dtype=np.int64)

    def ask(epoch: int, metrics: Metrics) -> bool:
        cols = {k: None if v is None else np.array([v]) for k, v in metrics.items()}
        stop = on_epochs(member, np.array([epoch], dtype=np.int64), cols)
        return stop is not None and 0 in stop

    return ask


def train(
    net: Network,
    X: Array,
    Y: Array,
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    on_epoch: Callable[[int, Metrics], None] | None = None,
    validation: tuple[Array, Array] | None = None,
    state: TrainState | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    on_epochs: PopulationCallback | None = None,
) -> History:
    """Train ``net`` in place on X: (n, d_in), Y: (n, d_out) and return the History.

    ``on_epoch(epoch, metrics)`` runs after every epoch (numbered from 1) with
    {"loss", "accuracy", "max_error"} (+ "val_loss", "val_accuracy" given a
    ``validation`` (X, Y) pair); raising StopTraining in it stops training.
    ``on_epochs(members, epochs, metrics)``: train_population's callback, the net being
    member 0 of a population of one (arrays of one); returning a collection holding 0
    stops training ("stopped"). ``on_checkpoint(state)`` runs after every
    ``checkpoint_every``-th epoch while training goes on. Never raises for divergence:
    it ends with outcome "diverged". NaN or infinite X or Y: ValueError. The net must be
    built in ``config.dtype``; X and Y are converted to it.
    """
    check_dtype(net, config)
    X, Y, kind, rows_sum_to_one = prepare_set(net, X, Y, checkpoint_every, validation)
    opt = make_optimizer(config.optimizer, net.theta.size, net.dtype)
    first, best, solved = 1, math.inf, None
    if state is not None:
        _restore(state, net, opt, rng)
        first, best, solved = state.epoch + 1, state.best_loss, state.solved_epoch
    tracker = Tracker(config, net.theta, state) if tracks(config) else None
    every = checkpoint_every if on_checkpoint is not None else None
    control = One(config, best, solved, every, tracker)
    rows = _Rows(net, max(0, config.epochs - first + 1), kind, validation)
    updates = _Updates(net, X, Y, config, kind, rows_sum_to_one, opt)
    ask = None if on_epochs is None else _as_population(on_epochs)
    last, code = first - 1, 0
    epoch_of = updates.full_epoch if updates.full else updates.batch_epoch
    valid = -1.0 if config.schedule else math.inf  # the values in force hold through this
    theta = net.theta
    with np.errstate(all="ignore"):
        if first <= config.epochs:
            updates.start()
        for epoch in range(first, config.epochs + 1):
            if epoch > valid:
                lr, mom, valid = phase(config, epoch)
                if (lr, mom) != (updates.lr, updates.mom):
                    updates.set_rate(lr, mom)
            loss, acc, max_err = epoch_of(rng)
            metrics = rows.write(epoch - first, loss, acc, max_err)
            last = epoch
            stop = False
            if on_epoch is not None:
                try:
                    on_epoch(epoch, metrics)
                except StopTraining:
                    stop = True
            if ask is not None and ask(epoch, metrics):
                stop = True
            if tracker is None:
                code, due = control.after_epoch(epoch, loss, max_err, theta, stop)
            else:  # early stopping follows val_loss when there is a validation set
                monitored = metrics.get("val_loss", loss)
                code, due = control.after_epoch(
                    epoch, loss, max_err, theta, stop, monitored, metrics
                )
            if due:
                on_checkpoint(_snapshot(net, opt, rng, epoch, control))  # type: ignore[misc]
            if code:
                break
    history = rows.history(first, last, code or 5, _snapshot(net, opt, rng, last, control))
    if tracker is not None:
        history.best_epoch = tracker.best_epoch
        if tracker.restore_into(net.theta, history.outcome):
            history.restored_best, history.best_metrics = True, tracker.best_metrics
    return history
