"""Population training: K same-shape networks trained at once as one stacked computation.

``train_population(nets, X, Y, configs, rngs=...)`` gives each member exactly the History,
TrainState and final weights that ``train(nets[k], X, Y, configs[k], rng=rngs[k])`` gives
it alone: the same numbers bit for bit (see ``engine.stacked``), its own stopping (epochs,
stop_loss, solved, diverged, StopTraining from its callback), checkpoints and resume. A member
that stops is compacted away and the others go on.

What members may differ in: initial weights (their nets), learning rate, momentum, weight
decay, schedule, epochs and stop criteria (their configs), generator (init and per-epoch
shuffles), resume state. What they share: the data, the network shape (layers, activations,
cost, skip connections, masks), the optimizer and the batch size.

Why: small nets are dominated by per-call overhead (a 2-2-1 epoch is ~25 us of Python and
NumPy calls around a few flops); stacking K of them pays that overhead once per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from .metrics import accuracy_kind
from .minor import MinorScorer, MinorStack, fits
from .network import Network
from .schedule import values_at
from .stacked import (
    Stack,
    StackedOptimizer,
    StackedScorer,
    StackedWorkspace,
    head,
    same_shape,
    stack_thetas,
)
from .state import TrainState
from .training import History, Metrics, StopTraining, TrainConfig, prepare_set

Array = np.ndarray

# on_epoch(member, epoch, metrics): one member's epoch, as train()'s on_epoch.
MemberCallback = Callable[[int, int, Metrics], None]
# on_epochs(members, epochs, metrics): all running members' epoch at once (arrays aligned with
# ``members``; accuracy/val_* arrays or None); returns the members to stop (as StopTraining).
PopulationCallback = Callable[[Array, Array, dict[str, Array | None]], Collection[int] | None]

_DIVERGED, _SOLVED, _STOP_LOSS, _STOPPED, _COMPLETED = 1, 2, 3, 4, 5
_NAMES = {
    _DIVERGED: "diverged",
    _SOLVED: "solved",
    _STOP_LOSS: "stop_loss",
    _STOPPED: "stopped",
    _COMPLETED: "completed",
}


class _Records:
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


def _next_change(config: TrainConfig, epoch: int) -> float:
    """The last epoch through which the values in force at ``epoch`` are sure to hold."""
    for phase in config.schedule:
        if epoch <= phase.until:
            return phase.until
    return math.inf


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
    for k, net in enumerate(nets):
        if not same_shape(nets[0], net):
            raise ValueError(f"member {k} has another shape than member 0: {net!r}")
        if not isinstance(rngs[k], np.random.Generator):
            raise TypeError("rngs must be numpy.random.Generator objects")
    c0 = configs[0]
    for k, cfg in enumerate(configs):
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
    aligned with the running ``members``, returning the members to stop.
    ``on_checkpoint(k, state)`` runs after every ``checkpoint_every``-th epoch of a member
    that goes on. ``states[k]`` (or None) resumes member k; members may be at different epochs.
    ``on_finish(k, history)`` runs as soon as member k has stopped (its net then holds its
    final weights), while the others go on: a caller can store a finished member's results
    without waiting for the slowest one.
    """
    _check(nets, configs, rngs, states)
    template = nets[0]
    X, Y, kind, rows_sum_to_one = prepare_set(template, X, Y, checkpoint_every)
    n = X.shape[0]
    K0 = len(nets)
    opt_name, batch = configs[0].optimizer, configs[0].batch_size
    running = configs[0].epoch_metrics == "running"
    full = batch is None or batch >= n
    step_size = n if batch is None else batch  # rows per update (mini-batch schedules)

    theta = stack_thetas(nets)
    opt = StackedOptimizer.zeros(opt_name, K0, theta.shape[1])
    first = np.ones(K0, dtype=np.int64)
    best = np.full(K0, math.inf)
    solved = np.full(K0, -1, dtype=np.int64)
    for k, state in enumerate(states or ()):
        if state is None:
            continue
        if state.optimizer != opt_name:
            raise ValueError(
                f"member {k}: state was saved by optimizer {state.optimizer!r}, "
                f"config has {opt_name!r}"
            )
        nets[k].set_params(state.params)
        theta[k] = nets[k].theta
        opt.load_member(k, state.buffers)
        rngs[k].bit_generator.state = state.rng_state
        first[k] = state.epoch + 1
        best[k] = state.best_loss
        solved[k] = -1 if state.solved_epoch is None else state.solved_epoch
    limit = np.array([c.epochs for c in configs], dtype=np.int64)
    counts = np.maximum(0, limit - first + 1)

    val_kind = None
    if validation is not None:
        Xv, Yv = template._check_xy(*validation)
        val_kind = accuracy_kind(template.output_activation, Yv)
    names = ["loss", "max_error"]
    if kind is not None:
        names.append("accuracy")
    if validation is not None:
        names.append("val_loss")
        if val_kind is not None:
            names.append("val_accuracy")
    records = _Records(names)
    histories: list[History | None] = [None] * K0

    def snapshot(
        k: int,
        row: int,
        epoch: int,
        stack_theta: Array,
        o: StackedOptimizer,
        best_k: float,
        solved_k: int,
    ) -> TrainState:
        nets[k].theta[...] = stack_theta[row]
        return TrainState(
            epoch=epoch,
            params=[p.copy() for p in nets[k].params],
            optimizer=opt_name,
            buffers=o.member_buffers(row),
            rng_state=dict(rngs[k].bit_generator.state),
            best_loss=best_k,
            solved_epoch=None if solved_k < 0 else solved_k,
        )

    def finish(k: int, row: int, last: int, code: int, st: Array, o: StackedOptimizer) -> None:
        histories[k] = History(
            start_epoch=int(first[k]),
            epochs=int(last),
            loss=records.member("loss", k),  # type: ignore[arg-type]
            max_error=records.member("max_error", k),  # type: ignore[arg-type]
            accuracy=records.member("accuracy", k),
            val_loss=records.member("val_loss", k),
            val_accuracy=records.member("val_accuracy", k),
            outcome=_NAMES[code],
            solved_epoch=None if solved[k] < 0 else int(solved[k]),
            best_loss=float(best[k]),
            state=snapshot(k, row, int(last), st, o, float(best[k]), int(solved[k])),
        )
        if on_finish is not None:
            on_finish(k, histories[k])  # type: ignore[arg-type]

    for k in np.flatnonzero(counts == 0).tolist():  # nothing left to run: train() returns at once
        finish(k, k, int(first[k] - 1), _COMPLETED, theta, opt)

    members = np.flatnonzero(counts > 0)
    if members.size == 0:
        return histories  # type: ignore[return-value]
    theta = theta[members]
    opt = opt.take(members)
    K = members.size
    # per-running-member settings, aligned with ``members`` (compacted together)
    m_first = first[members]
    m_limit = limit[members]
    m_best = best[members]
    m_solved = solved[members]
    cfgs = [configs[k] for k in members.tolist()]
    within = np.array([math.nan if c.stop_within is None else c.stop_within for c in cfgs])
    within[m_solved >= 0] = math.nan  # solved before a resume: never solved again
    stop_loss = np.array([math.nan if c.stop_loss is None else c.stop_loss for c in cfgs])
    on_solve = np.array([c.stop_on_solve for c in cfgs])
    lr = np.array([c.learning_rate for c in cfgs])
    mom = np.array([c.momentum for c in cfgs])
    valid = np.array([-1 if c.schedule else math.inf for c in cfgs])
    scheduled = bool(np.isfinite(valid).any())
    wd = np.array([c.weight_decay for c in cfgs])
    fold = opt.folds_learning_rate  # as train(): the output deltas carry -eps
    decay_tmp = np.empty_like(theta) if (wd > 0).any() else None

    if full:
        stack, scorer = _full_batch(template, theta, X, Y, kind)
        ws = scorer.chunks[0][0]
    else:
        assert batch is not None
        stack = Stack(template, theta)
        ws_batch = StackedWorkspace(template, K, batch)
        ws_rest = StackedWorkspace(template, K, n % batch) if n % batch else ws_batch
        scorer = StackedScorer(template, K, X, Y, kind)
        xb, yb = np.empty((K, batch, X.shape[1])), np.empty((K, batch, Y.shape[1]))
        xr, yr = np.empty((K, n % batch, X.shape[1])), np.empty((K, n % batch, Y.shape[1]))
        perms = np.empty((K, n), dtype=np.int64)
    val_scorer = None
    if validation is not None:
        val_scorer = StackedScorer(template, K, Xv, Yv, val_kind)

    def columns() -> tuple[Array, Array, float | Array, Array | None]:
        """(K, 1) learning rates and momenta, the output-delta factor and the decay terms,
        for the running members and the values in force."""
        neg = -lr[:, None]
        decay = None
        if decay_tmp is not None:
            decay = wd[:, None] * template.weight_indicator
            if fold:
                decay = decay * neg
        return lr[:, None], mom[:, None], neg[:, :, None] if fold else 1.0, decay

    lr_col, mom_col, factor, decay = columns()
    isfinite, add_reduce = np.isfinite, np.add.reduce
    any_stop_loss = bool(np.isfinite(stop_loss).any())
    any_within = not np.isnan(within).all()  # some member may still be solved
    first_limit_it = int((m_limit - m_first).min())  # no member reaches its epochs before
    records.open(members)
    it = 0
    with np.errstate(all="ignore"):
        if full:
            stack.run(ws)
            np.subtract(ws.out, ws.y, out=ws.diff)
        while K:
            epochs = m_first + it
            if scheduled and (epochs > valid).any():
                for r in np.flatnonzero(epochs > valid).tolist():
                    c, e = cfgs[r], int(epochs[r])
                    lr[r], mom[r] = values_at(c.schedule, e, c.learning_rate, c.momentum)
                    valid[r] = _next_change(c, e)
                lr_col, mom_col, factor, decay = columns()
            theta, grad = stack.theta, stack.grad
            if full:
                if running:  # the weights this epoch starts from; also leaves ws.diff
                    loss, acc, max_err = scorer.score(stack, run=False)
                stack.output_delta(ws, rows_sum_to_one, factor)
                stack.backprop(ws)
                _decay(theta, grad, decay, decay_tmp, wd)
                opt.step(theta, grad, lr_col, mom_col)
                stack.run(ws)
                if not running:
                    loss, acc, max_err = scorer.score(stack, run=False)
            else:
                sums = scorer.running_sums() if running else None
                for r, k in enumerate(members.tolist()):
                    perms[r] = rngs[k].permutation(n)
                for start in range(0, n, step_size):
                    idx = perms[:, start : start + step_size]
                    w = ws_batch if idx.shape[1] == step_size else ws_rest
                    rows_x, rows_y = (xb, yb) if w is ws_batch else (xr, yr)
                    np.take(X, idx, axis=0, out=rows_x, mode="clip")
                    w.load_x(rows_x)
                    np.take(Y, idx, axis=0, out=rows_y, mode="clip")
                    np.copyto(w.y, rows_y.transpose(0, 2, 1))
                    stack.run(w)
                    if sums is not None:
                        sums.add(w, idx)  # also leaves w.diff
                    else:
                        np.subtract(w.out, w.y, out=w.diff)
                    stack.output_delta(w, rows_sum_to_one, factor)
                    stack.backprop(w)
                    _decay(theta, grad, decay, decay_tmp, wd)
                    opt.step(theta, grad, lr_col, mom_col)
                loss, acc, max_err = scorer.score(stack) if sums is None else sums.result()
            values: dict[str, Array | None] = {"loss": loss, "accuracy": acc, "max_error": max_err}
            if val_scorer is not None:
                values["val_loss"], values["val_accuracy"], _ = val_scorer.score(stack)
            records.write(values)

            # stopping, member by member exactly as train() decides it. The common epoch
            # (all finite, nobody stops) costs a few whole-array operations: ``outcome`` is
            # only made when some member may stop, ``ok`` (None: every member finite) only
            # when some member is not finite.
            outcome: Array | None = None
            ok: Array | None = None
            theta_ok = _sums_finite(theta)
            if math.isfinite(float(add_reduce(loss))) and theta_ok:  # finite sum: no inf/nan
                np.minimum(m_best, loss, out=m_best)  # = "if loss < best: best = loss"
            else:
                ok = isfinite(loss)
                if not theta_ok:
                    ok &= isfinite(add_reduce(theta, axis=1))
                outcome = np.zeros(K, dtype=np.int8)
                outcome[~ok] = _DIVERGED
                np.minimum(m_best, loss, out=m_best, where=ok & (loss < m_best))
            if any_within:
                newly = max_err < within  # within is nan once solved, or without stop_within
                if newly.any():
                    if ok is not None:
                        newly &= ok
                    if outcome is None:
                        outcome = np.zeros(K, dtype=np.int8)
                    m_solved[newly] = epochs[newly]
                    within[newly] = math.nan
                    any_within = not np.isnan(within).all()
                    outcome[newly & on_solve] = _SOLVED
            if any_stop_loss:
                hit = loss < stop_loss
                if ok is not None:
                    hit &= ok
                if hit.any():
                    if outcome is None:
                        outcome = np.zeros(K, dtype=np.int8)
                    outcome[hit & (outcome == 0)] = _STOP_LOSS
            if outcome is None and (
                on_epoch is not None or on_epochs is not None or it >= first_limit_it
            ):
                outcome = np.zeros(K, dtype=np.int8)
            if on_epoch is not None:
                _call_members(on_epoch, members, epochs, values, outcome)  # type: ignore[arg-type]
            if on_epochs is not None:
                stop = on_epochs(members, epochs, values)
                if stop:
                    hit = np.isin(members, np.fromiter(stop, dtype=np.int64)) & (outcome == 0)
                    outcome[hit] = _STOPPED  # type: ignore[index]
            if checkpoint_every and on_checkpoint is not None:
                due = epochs % checkpoint_every == 0
                if outcome is not None:
                    due &= outcome == 0
                for r in np.flatnonzero(due).tolist():
                    k = int(members[r])
                    e, b, sv = int(epochs[r]), float(m_best[r]), int(m_solved[r])
                    on_checkpoint(k, snapshot(k, r, e, theta, opt, b, sv))
            if it >= first_limit_it:
                outcome[(outcome == 0) & (epochs >= m_limit)] = _COMPLETED  # type: ignore[index]
            it += 1
            if outcome is None or not outcome.any():
                continue

            # compaction: finished members leave the stack, the others go on
            done = np.flatnonzero(outcome)
            records.close()
            best[members] = m_best
            solved[members] = m_solved
            for r in done.tolist():
                finish(int(members[r]), r, int(epochs[r]), int(outcome[r]), theta, opt)
            keep = np.flatnonzero(outcome == 0)
            K = keep.size
            if not K:
                break
            members, m_first, m_limit = members[keep], m_first[keep], m_limit[keep]
            records.open(members)
            first_limit_it = int((m_limit - m_first).min())
            m_best, m_solved = m_best[keep], m_solved[keep]
            within, stop_loss, on_solve = within[keep], stop_loss[keep], on_solve[keep]
            any_within = not np.isnan(within).all()
            lr, mom, valid, wd = lr[keep], mom[keep], valid[keep], wd[keep]
            cfgs = [cfgs[r] for r in keep]
            if decay_tmp is not None:
                decay_tmp = decay_tmp[:K]
            lr_col, mom_col, factor, decay = columns()
            opt = opt.take(keep)
            if val_scorer is not None:
                val_scorer = val_scorer.head(K)
            if full:
                stack, scorer = _full_batch(template, theta[keep], X, Y, kind)
                ws = scorer.chunks[0][0]
                # the next gradient starts from this forward pass: redo it for the kept rows
                stack.run(ws)
                np.subtract(ws.out, ws.y, out=ws.diff)
            else:
                stack = Stack(template, theta[keep])
                scorer = scorer.head(K)
                ws_batch = head(ws_batch, K)
                ws_rest = head(ws_rest, K) if n % step_size else ws_batch
                xb, yb, xr, yr, perms = xb[:K], yb[:K], xr[:K], yr[:K], perms[:K]
    return histories  # type: ignore[return-value]


def _full_batch(
    template: Network, theta: Array, X: Array, Y: Array, kind: str | None
) -> tuple[Stack, StackedScorer]:
    """The stack and training-set scorer of a full-batch population: member-minor
    (``engine.minor``) where that layout is verified for these sizes, else member-major
    with the shared input loaded once."""
    K = theta.shape[0]
    lanes = fits(template, K, X.shape[0])
    if lanes is not None:
        return MinorStack(template, theta, lanes), MinorScorer(template, K, X, Y, kind)
    ws = StackedWorkspace(template, K, X.shape[0], shared_input=not template.skip_connections)
    return Stack(template, theta), StackedScorer(template, K, X, Y, kind, ws=ws)


def _sums_finite(theta: Array) -> bool:
    """True when every member's sum(theta) (train()'s divergence test) is surely finite:
    no inf/nan, and too small for any order of summation to overflow. One ddot over the
    whole (K, P) array instead of K row sums: a finite sum of squares bounds every |w| by
    sqrt(max float) ~ 1.3e154, so a row of P < 1e150 of them cannot overflow (and an
    inf/nan makes the sum inf/nan). When False the caller does the exact row sums."""
    flat = theta.reshape(-1)
    return math.isfinite(float(np.dot(flat, flat)))


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


def _call_members(
    on_epoch: MemberCallback,
    members: Array,
    epochs: Array,
    values: dict[str, Array | None],
    outcome: Array,
) -> None:
    cols = {k: (None if v is None else v.tolist()) for k, v in values.items()}
    loss, acc, max_err = cols["loss"], cols["accuracy"], cols["max_error"]
    has_val = "val_loss" in cols
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
            if outcome[r] == 0:
                outcome[r] = _STOPPED
