"""The training loop: epochs of updates, per-epoch metrics, stopping, resuming.

Per epoch: the updates (one per batch), then the metrics of the network *after*
them. With full batches the forward pass that gives those metrics is also the
one the next epoch's gradient starts from: one forward and one backward pass
per epoch. ``epoch_metrics="running"`` instead sums the metrics over the epoch's
own forward passes, as scikit-learn and Keras report a training loss: no extra
pass with mini-batches, the weights before the update with a full batch.

Resuming: ``train(..., state=s)`` restores weights, optimizer buffers and the
generator, and produces exactly the numbers the uninterrupted run produces from
epoch ``s.epoch + 1`` on (its History covers those epochs only; the caller holds
the earlier ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .activations import check_name
from .metrics import Scorer, accuracy_kind
from .network import Network, Workspace
from .optimizers import OPTIMIZERS, Optimizer, make_optimizer
from .schedule import Phase, parse_schedule, values_at
from .state import TrainState

Array = np.ndarray
Metrics = dict[str, Any]

OUTCOMES = ("completed", "stop_loss", "solved", "diverged", "stopped")

# What an epoch's metrics (and so the stop criteria) describe.
EPOCH_METRICS = {
    "exact": "the net after the epoch's updates, over the whole training set (with "
    "mini-batches this costs one forward pass over the set per epoch)",
    "running": "summed over the epoch's batches, each measured on the forward pass of its own "
    "update, before that update (scikit-learn's loss_curve_, Keras's loss): no extra pass",
}


class StopTraining(Exception):  # noqa: N818 - the name is the public contract
    """Raise inside ``on_epoch`` to stop training (outcome "stopped")."""


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 or None, got {value}")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the training keys of a run configuration).

    ``batch_size``: None (or "full") = full batch, the paper's sweep; 1 = per
    pattern; a batch at least as large as the set is a full batch (no shuffle).
    ``weight_decay``: L2 coefficient lambda added to the gradient of the weights
    (not biases): dE/dw += lambda w. With sgd each sweep then shrinks weights by
    eps * lambda, so the 1986 family-trees "0.2% per sweep" at eps 0.005 is
    weight_decay=0.4. ``stop_within``: solved when every output is within this of
    its target (max |o - e| < stop_within); ``stop_on_solve`` then stops there.
    ``schedule``: phases, see ``engine.schedule``. ``epoch_metrics``: "exact" or
    "running", see EPOCH_METRICS; with a full batch "running" gives each epoch the
    metrics of the weights it started from.
    """

    learning_rate: float = 0.1
    momentum: float = 0.0
    optimizer: str = "sgd"
    batch_size: int | None = None
    epochs: int = 1000
    weight_decay: float = 0.0
    stop_loss: float | None = None
    stop_within: float | None = None
    stop_on_solve: bool = True
    schedule: tuple[Phase, ...] = field(default=())
    epoch_metrics: str = "exact"

    def __post_init__(self) -> None:
        lr = float(self.learning_rate)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        mom = float(self.momentum)
        if not 0.0 <= mom < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        check_name("optimizer", self.optimizer, OPTIMIZERS)
        batch = self.batch_size
        if batch == "full":
            batch = None
        bad = isinstance(batch, bool) or not isinstance(batch, int) or batch < 1
        if batch is not None and bad:
            raise ValueError(f"batch_size must be 'full', None or an int >= 1, got {batch!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")
        wd = _opt_float(self.weight_decay, "weight_decay")
        set_ = object.__setattr__
        set_(self, "learning_rate", lr)
        set_(self, "momentum", mom)
        set_(self, "batch_size", batch)
        set_(self, "weight_decay", wd or 0.0)
        set_(self, "stop_loss", _opt_float(self.stop_loss, "stop_loss"))
        set_(self, "stop_within", _opt_float(self.stop_within, "stop_within"))
        set_(self, "stop_on_solve", bool(self.stop_on_solve))
        set_(self, "schedule", parse_schedule(self.schedule))
        check_name("epoch_metrics", self.epoch_metrics, EPOCH_METRICS)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrainConfig:
        """Build from a run configuration, ignoring its network and dataset keys."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in config.items() if k in names})

    def values_at(self, epoch: int) -> tuple[float, float]:
        """(learning_rate, momentum) in force during ``epoch``."""
        return values_at(self.schedule, epoch, self.learning_rate, self.momentum)


@dataclass
class History:
    """What a call to ``train`` did.

    Arrays cover epochs ``start_epoch .. epochs`` (``epochs`` is the number of the
    last epoch run; ``start_epoch`` is 1 unless resumed). ``accuracy`` is None when
    the task has none; ``val_*`` are None without a validation set.
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


def _snapshot(
    net: Network,
    opt: Optimizer,
    rng: np.random.Generator,
    epoch: int,
    best: float,
    solved: int | None,
) -> TrainState:
    return TrainState(
        epoch=epoch,
        params=[p.copy() for p in net.params],
        optimizer=opt.name,
        buffers={k: v.copy() for k, v in opt.buffers.items()},
        rng_state=dict(rng.bit_generator.state),
        best_loss=best,
        solved_epoch=solved,
    )


def _restore(state: TrainState, net: Network, opt: Optimizer, rng: np.random.Generator) -> None:
    if state.optimizer != opt.name:
        raise ValueError(
            f"state was saved by optimizer {state.optimizer!r}, config has {opt.name!r}"
        )
    net.set_params(state.params)
    opt.load_buffers(state.buffers)
    rng.bit_generator.state = state.rng_state


def prepare_set(
    net: Network, X: Array, Y: Array, checkpoint_every: int | None
) -> tuple[Array, Array, str | None, bool]:
    """Checked, contiguous (X, Y) for ``net``, their accuracy kind, and whether every target
    row sums to 1 (the softmax + cross-entropy shortcut); shared by train and
    train_population, which must judge a set alike."""
    X, Y = net._check_xy(X, Y)
    X, Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    if X.shape[0] == 0:
        raise ValueError("cannot train on an empty set")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError("checkpoint_every must be >= 1")
    kind = accuracy_kind(net.output_activation, Y)
    rows_sum_to_one = bool(np.allclose(Y.sum(axis=1), 1.0, rtol=0.0, atol=1e-12))
    return X, Y, kind, rows_sum_to_one


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
) -> History:
    """Train ``net`` in place on X: (n, d_in), Y: (n, d_out) and return the History.

    ``on_epoch(epoch, metrics)`` runs after every epoch (numbered from 1) with
    {"loss", "accuracy", "max_error"} (+ "val_loss", "val_accuracy" given a
    ``validation`` (X, Y) pair); raising StopTraining in it stops training.
    ``on_checkpoint(state)`` runs after every ``checkpoint_every``-th epoch while
    training goes on. Never raises for divergence: it ends with outcome "diverged".
    """
    X, Y, kind, rows_sum_to_one = prepare_set(net, X, Y, checkpoint_every)
    n = X.shape[0]
    opt = make_optimizer(config.optimizer, net.theta.size)
    first, best, solved = 1, math.inf, None
    if state is not None:
        _restore(state, net, opt, rng)
        first, best, solved = state.epoch + 1, state.best_loss, state.solved_epoch
    count = max(0, config.epochs - first + 1)

    batch = config.batch_size
    full = batch is None or batch >= n
    if full:
        ws = Workspace(net, n)
        scorer = Scorer(net, X, Y, kind, ws=ws)
    else:
        assert batch is not None  # for the type checker: not full means a batch size
        ws_batch = Workspace(net, batch)
        ws_rest = Workspace(net, n % batch) if n % batch else ws_batch
        scorer = Scorer(net, X, Y, kind)
        xb, yb = np.empty((batch, X.shape[1])), np.empty((batch, Y.shape[1]))
        xr, yr = xb[: n % batch], yb[: n % batch]
    val_scorer = None
    if validation is not None:
        Xv, Yv = net._check_xy(*validation)
        val_scorer = Scorer(net, Xv, Yv, accuracy_kind(net.output_activation, Yv))

    loss_a = np.empty(count)
    maxerr_a = np.empty(count)
    acc_a = np.empty(count) if kind is not None else None
    vloss_a = np.empty(count) if val_scorer is not None else None
    vacc_a = np.empty(count) if val_scorer is not None and val_scorer.kind is not None else None

    theta, grad = net.theta, net.grad
    step = opt.step
    schedule = config.schedule
    lr, mom = config.learning_rate, config.momentum
    # sgd and nesterov take -eps dE/dw: the output deltas are scaled by ``factor`` instead
    # of the gradient (see engine.optimizers); weight decay's lambda w likewise
    fold = opt.folds_learning_rate
    factor = -lr if fold else 1.0
    decay = decay_tmp = None
    if config.weight_decay > 0:
        decay = config.weight_decay * net.weight_indicator
        if fold:
            decay *= factor
        decay_tmp = np.empty_like(theta)
    stop_within, stop_loss, stop_on_solve = (
        config.stop_within,
        config.stop_loss,
        config.stop_on_solve,
    )
    running = config.epoch_metrics == "running"
    add_reduce, isfinite = np.add.reduce, math.isfinite
    outcome: str | None = None
    last = first - 1

    with np.errstate(all="ignore"):
        if full and count:
            net.run(ws)
            np.subtract(ws.out, ws.y, out=ws.diff)
        for epoch in range(first, config.epochs + 1):
            if schedule:
                lr, mom = values_at(schedule, epoch, config.learning_rate, config.momentum)
                if fold and -lr != factor:
                    factor = -lr
                    if decay is not None:
                        decay = (config.weight_decay * net.weight_indicator) * factor
            if full:
                if running:  # the weights this epoch starts from; also leaves ws.diff
                    loss, acc, max_err = scorer.score(run=False)
                net.output_delta(ws, rows_sum_to_one, factor)
                net.backprop(ws)
                if decay is not None:
                    grad += np.multiply(theta, decay, out=decay_tmp)
                step(theta, grad, lr, mom)
                net.run(ws)
                if not running:
                    loss, acc, max_err = scorer.score(run=False)
            else:
                sums = scorer.running_sums() if running else None
                perm = rng.permutation(n)
                for start in range(0, n, batch):  # type: ignore[arg-type]
                    idx = perm[start : start + batch]  # type: ignore[operator]
                    w = ws_batch if len(idx) == batch else ws_rest
                    # gather whole rows into contiguous buffers (np.take into the strided
                    # input block would be buffered, twice slower), then copy them in
                    rows_x, rows_y = (xb, yb) if w is ws_batch else (xr, yr)
                    np.take(X, idx, axis=0, out=rows_x, mode="clip")
                    w.load_x(rows_x)
                    np.take(Y, idx, axis=0, out=rows_y, mode="clip")
                    np.copyto(w.y, rows_y.T)
                    net.run(w)
                    if sums is not None:
                        sums.add(w, idx)  # also leaves w.diff
                    else:
                        np.subtract(w.out, w.y, out=w.diff)
                    net.output_delta(w, rows_sum_to_one, factor)
                    net.backprop(w)
                    if decay is not None:
                        grad += np.multiply(theta, decay, out=decay_tmp)
                    step(theta, grad, lr, mom)
                loss, acc, max_err = scorer.score() if sums is None else sums.result()

            i = epoch - first
            loss_a[i] = loss
            maxerr_a[i] = max_err
            metrics: Metrics = {"loss": loss, "accuracy": acc, "max_error": max_err}
            if acc_a is not None:
                acc_a[i] = acc
            if val_scorer is not None:
                vloss, vacc, _ = val_scorer.score()
                metrics["val_loss"] = vloss
                metrics["val_accuracy"] = vacc
                vloss_a[i] = vloss  # type: ignore[index]
                if vacc_a is not None:
                    vacc_a[i] = vacc
            last = epoch

            if not (isfinite(loss) and isfinite(add_reduce(theta))):
                outcome = "diverged"
            else:
                if loss < best:
                    best = loss
                if stop_within is not None and solved is None and max_err < stop_within:
                    solved = epoch
                    if stop_on_solve:
                        outcome = "solved"
                if outcome is None and stop_loss is not None and loss < stop_loss:
                    outcome = "stop_loss"
            if on_epoch is not None:
                try:
                    on_epoch(epoch, metrics)
                except StopTraining:
                    outcome = outcome or "stopped"
            if outcome is not None:
                break
            if checkpoint_every and on_checkpoint is not None and epoch % checkpoint_every == 0:
                on_checkpoint(_snapshot(net, opt, rng, epoch, best, solved))

    ran = last - first + 1
    return History(
        start_epoch=first,
        epochs=last,
        loss=loss_a[:ran],
        max_error=maxerr_a[:ran],
        accuracy=None if acc_a is None else acc_a[:ran],
        val_loss=None if vloss_a is None else vloss_a[:ran],
        val_accuracy=None if vacc_a is None else vacc_a[:ran],
        outcome=outcome or "completed",
        solved_epoch=solved,
        best_loss=best,
        state=_snapshot(net, opt, rng, last, best, solved),
    )
