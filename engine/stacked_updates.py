"""The updates of one epoch of a population: ``engine.training``'s per-net updates for K
members stacked (see ``engine.stacked``), with the buffers and the values in force."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import TrainConfig
from .control import Phases
from .network import Network
from .stacked import Stack, StackedWorkspace, head
from .stacked_metrics import StackedScorer
from .stacked_optimizer import StackedOptimizer
from .training import shrink_factors

Array = np.ndarray


class StackedUpdates:
    """The running members' stack and buffers; ``keep`` cuts them down when members leave.

    ``validation``: (Xv, Yv, accuracy kind) or None; ``val_scorer`` scores it per member.
    """

    def __init__(
        self,
        template: Network,
        X: Array,
        Y: Array,
        configs: Sequence[TrainConfig],
        kind: str | None,
        rows_sum_to_one: bool,
        validation: tuple[Array, Array, str | None] | None,
        theta: Array,
        opt: StackedOptimizer,
        rngs: Sequence[np.random.Generator],
    ) -> None:
        self.template, self.X, self.Y, self.kind = template, X, Y, kind
        self.rows_sum_to_one, self.validation, self.rngs = rows_sum_to_one, validation, rngs
        self.batch = configs[0].batch_size
        self.running = configs[0].epoch_metrics == "running"
        self.n = X.shape[0]
        self.full = self.batch is None or self.batch >= self.n
        self.opt = opt
        self.phases = Phases(configs)
        self.wd = np.array([c.weight_decay for c in configs])
        self.decay_tmp = np.empty_like(theta) if (self.wd > 0).any() else None
        margins = np.array([c.error_margin for c in configs])
        # a float 0.0 skips the dead zone (train() without one does not touch the deltas)
        self.margin: float | Array = margins[:, None, None] if margins.any() else 0.0
        self.shrink = _stacked_shrink(template, configs)
        self._build(theta, None)
        self._columns()
        self.epoch = self.full_epoch if self.full else self.batch_epoch

    def values_at(self, epochs: Array) -> None:
        """The learning rates and momenta in force during ``epochs``."""
        if self.phases.changes(epochs):
            self._columns()

    def keep(self, rows: Array) -> None:
        """Only the members in ``rows`` go on."""
        theta = self.stack.theta
        self.phases.keep(rows)
        self.wd = self.wd[rows]
        if not isinstance(self.margin, float):
            self.margin = self.margin[rows]
        if self.shrink is not None:
            self.shrink = self.shrink[rows]
        if self.decay_tmp is not None:
            self.decay_tmp = self.decay_tmp[: rows.size]
        self.opt = self.opt.take(rows)
        self._build(theta[rows], rows)
        self._columns()

    def _build(self, theta: Array, keep: Array | None) -> None:
        """The stack and buffers for the rows of ``theta``: made afresh at the start, cut
        down to the first K rows (views) when members leave."""
        K, template, X, Y, n = theta.shape[0], self.template, self.X, self.Y, self.n
        self.stack = Stack(template, theta)
        if self.full:
            # the shared input is loaded once for all members (no skip connections)
            ws = StackedWorkspace(template, K, n, shared_input=not template.skip_connections)
            self.scorer = StackedScorer(template, K, X, Y, self.kind, ws=ws)
            self.ws = ws
            # the next gradient starts from this forward pass
            self.stack.run(ws)
            np.subtract(ws.out, ws.y, out=ws.diff)
        elif keep is None:
            b = self.batch
            assert b is not None
            self.ws_batch = StackedWorkspace(template, K, b)
            self.ws_rest = StackedWorkspace(template, K, n % b) if n % b else self.ws_batch
            self.scorer = StackedScorer(template, K, X, Y, self.kind)
            dt = X.dtype
            self.xb, self.yb = np.empty((K, b, X.shape[1]), dt), np.empty((K, b, Y.shape[1]), dt)
            self.xr = np.empty((K, n % b, X.shape[1]), dt)
            self.yr = np.empty((K, n % b, Y.shape[1]), dt)
            self.perms = np.empty((K, n), dtype=np.int64)
        else:
            self.scorer = self.scorer.head(K)
            self.ws_batch = head(self.ws_batch, K)
            self.ws_rest = head(self.ws_rest, K) if self.n % self.batch else self.ws_batch  # type: ignore[operator]
            self.xb, self.yb, self.xr, self.yr = self.xb[:K], self.yb[:K], self.xr[:K], self.yr[:K]
            self.perms = self.perms[:K]
        if self.validation is None:
            self.val_scorer = None
        elif keep is None:
            self.val_scorer = StackedScorer(template, K, *self.validation)
        else:
            self.val_scorer = self.val_scorer.head(K)  # type: ignore[union-attr]

    def _columns(self) -> None:
        """(K, 1) learning rates and momenta, the output-delta factor and the decay terms,
        for the running members and the values in force (as train(): with sgd and nesterov
        the output deltas carry -eps)."""
        lr, fold = self.phases.lr, self.opt.folds_learning_rate
        neg = -lr[:, None]
        # Scalars that a single net applies as Python floats meet its arrays rounded to its
        # dtype; here they are columns of that dtype, so that a float32 member computes as
        # its lone run does (float64 columns would upcast the step). The output deltas'
        # factor stays float64: Network.output_delta scales it by 1/m first, as train() does.
        dtype = self.template.dtype
        self.decay = None
        if self.decay_tmp is not None:
            self.decay = self.wd[:, None].astype(dtype) * self.template.weight_indicator
            if fold:
                self.decay = self.decay * neg.astype(dtype)
        self.lr_col, self.mom_col = lr[:, None], self.phases.mom[:, None].astype(dtype)
        self.factor = neg[:, :, None] if fold else 1.0

    def _update(self, w: StackedWorkspace) -> None:
        stack = self.stack
        stack.output_delta(w, self.rows_sum_to_one, self.factor, self.margin)
        stack.backprop(w)
        _decay(stack.theta, stack.grad, self.decay, self.decay_tmp, self.wd)
        self.opt.step(stack.theta, stack.grad, self.lr_col, self.mom_col)
        if self.shrink is not None:
            stack.theta *= self.shrink

    def full_epoch(self, members: Array) -> tuple[Array, Array | None, Array]:
        stack, ws, scorer, running = self.stack, self.ws, self.scorer, self.running
        if running:  # the weights this epoch starts from; also leaves ws.diff
            metrics = scorer.score(stack, run=False)
        self._update(ws)
        stack.run(ws)
        return metrics if running else scorer.score(stack, run=False)

    def batch_epoch(self, members: Array) -> tuple[Array, Array | None, Array]:
        X, Y, n, step = self.X, self.Y, self.n, self.batch
        assert step is not None
        sums = self.scorer.running_sums() if self.running else None
        perms = self.perms
        for r, k in enumerate(members.tolist()):
            perms[r] = self.rngs[k].permutation(n)
        for start in range(0, n, step):
            idx = perms[:, start : start + step]
            w = self.ws_batch if idx.shape[1] == step else self.ws_rest
            rows_x, rows_y = (self.xb, self.yb) if w is self.ws_batch else (self.xr, self.yr)
            np.take(X, idx, axis=0, out=rows_x, mode="clip")
            w.load_x(rows_x)
            np.take(Y, idx, axis=0, out=rows_y, mode="clip")
            np.copyto(w.y, rows_y.transpose(0, 2, 1))
            self.stack.run(w)
            if sums is not None:
                sums.add(w, idx)  # also leaves w.diff
            else:
                np.subtract(w.out, w.y, out=w.diff)
            self._update(w)
        return self.scorer.score(self.stack) if sums is None else sums.result()


def _decay(theta: Array, grad: Array, decay: Array | None, tmp: Array | None, wd: Array) -> None:
    """grad += lambda w for the members with weight decay (the others are left untouched,
    so that their numbers stay those of train(), which skips the operation)."""
    if decay is None:
        return
    if (wd > 0).all():
        grad += np.multiply(theta, decay, out=tmp)
        return
    rows = np.flatnonzero(wd > 0)
    if rows.size:
        grad[rows] += theta[rows] * decay[rows]


def _stacked_shrink(template: Network, configs: Sequence[TrainConfig]) -> Array | None:
    """(K, P) factors of ``decay`` (train()'s ``shrink_factors`` per member, 1.0 for a
    member without decay: x * 1.0 is x, its numbers stay train()'s); None when no member
    decays."""
    rows = [shrink_factors(template, c) for c in configs]
    if all(r is None for r in rows):
        return None
    ones = np.ones_like(template.theta)
    return np.stack([ones if r is None else r for r in rows])
