"""Member-minor stacks: a full-batch population of small nets with the member axis innermost.

``engine.stacked`` keeps each member's arrays together, (K, units, m), so that every
product can be the same BLAS call a single net makes. For the paper's tiny nets (XOR's
2-2-1 on 4 patterns) that layout leaves every elementwise operation with inner loops of
m = 4 numbers, and every per-member product is K BLAS calls of a few flops each: the
epoch is call overhead. Here activations are (m, units, K) and parameters (rows, d, K), so
each operation runs over all members in K-long contiguous loops, and the products become:

* layer 0 (the shared input): one GEMM over all members, as ``Stack._gemm_first``;
* later layers: elementwise products summed in the order the single net's BLAS call
  sums them (a sequential sum over the bias row first; for a one-unit gradient over m
  samples, the lanes of the gemv kernel);
* a hidden delta from one output unit: one product per entry, the same number as the single
  net's (only the sign of a zero product can differ, which the sums it enters absorb).

Every formulation is used only where a check on random data of the exact sizes finds
that it gives each member's own ``np.dot`` bits (see ``engine.stacked``); ``fits`` makes
those checks and says whether a whole network qualifies. Where one fails (more than
one output unit, sums whose BLAS kernel fuses multiply-adds, more than ``MAX_PATTERNS``
patterns), the population uses ``engine.stacked`` instead. The loss stays K ddot calls on
a member-major copy: BLAS sums it with fused multiply-adds, which no NumPy ufunc makes.

The parameters themselves stay (K, P) rows (``Stack.theta``) for the optimizer and the
trainer; each forward pass takes a transposed copy and each backward pass transposes the
gradient back (two copies of K x P numbers, small for the nets that qualify).
"""

from __future__ import annotations

import numpy as np

from .network import Network
from .stacked import (
    Stack,
    StackedScorer,
    StackedWorkspace,
    _same_bits,
    _trial_inputs,
    cost_sums,
)

Array = np.ndarray

# At most this many patterns: the product buffers grow as m x rows x d x K, and over more
# samples the gemv kernels that compute the single net's sums fuse multiply-adds anyway.
MAX_PATTERNS = 16

_FITS: dict[tuple[int, int, tuple[int, ...]], list[int] | None] = {}


class MinorWorkspace:
    """Full-batch buffers with the member axis last: activations (m, units, K).

    ``rows`` (m, 1 + d_in) is the shared input, sample-major with its column of ones, as in
    ``engine.network.Workspace``; ``ins[l]`` for l >= 1 is (m, 1 + units, K) with its row of
    ones; ``outs[l]`` the units' part of the next input (the output layer's is ``out``).
    """

    def __init__(self, net: Network, K: int, m: int) -> None:
        sizes = net.layer_sizes
        self.K, self.m = K, m
        self.rows = np.empty((m, 1 + sizes[0]))
        self.rows[:, 0] = 1.0
        self.ins: list[Array] = [self.rows.T]
        for d in sizes[1:-1]:
            buf = np.empty((m, 1 + d, K))
            buf[:, 0] = 1.0
            self.ins.append(buf)
        self.out = np.empty((m, sizes[-1], K))
        self.outs = [a[:, 1:] for a in self.ins[1:]] + [self.out]
        # layer 0's GEMM result, (m, d0 * K), before its activation
        self.first = np.empty((m, sizes[1] * K))
        self.y = np.empty((m, sizes[-1], K))
        self.diff = np.empty((m, sizes[-1], K))
        self.deltas = [np.empty((m, d, K)) for d in sizes[1:]]
        self.tmps = [np.empty((m, d, K)) for d in sizes[1:]]
        fan = [1 + d for d in sizes[:-1]]
        # products of a layer's sums, forward and gradient: (m, 1 + fan_in, d, K), for the
        # layers after the first (layer 0 is the GEMM; its entries are empty)
        none = np.empty(0)
        self.fprods = [none] + [np.empty((m, fan[l], sizes[l + 1], K)) for l in range(1, len(fan))]
        self.gprods = [none] + [np.empty((m, fan[l], sizes[l + 1], K)) for l in range(1, len(fan))]
        self.gsum = [none] + [np.empty((fan[l], sizes[l + 1], K)) for l in range(1, len(fan))]
        self.rowmax = np.empty((m, K))
        self.flags = np.empty((m, K))
        # member-major (K, d_out, m) copies for the loss's per-member ddot
        self.major = [np.empty((K, sizes[-1], m)) for _ in range(3)]

    def load(self, X: Array, Y: Array) -> None:
        np.copyto(self.rows[:, 1:], X)
        np.copyto(self.y, Y[:, :, None])


class MinorStack(Stack):
    """``Stack`` whose passes over a ``MinorWorkspace`` run member-minor (any other
    workspace, e.g. a validation scorer's, goes through ``Stack``'s own passes)."""

    def __init__(self, template: Network, theta: Array, lanes: list[int]) -> None:
        super().__init__(template, theta)
        self.lanes = lanes  # per layer >= 1: how its one-unit gradient sums the samples
        K, P = theta.shape
        self.thetaT = np.empty((P, K))
        self.gradT = np.empty((P, K))
        self.mblocks: list[Array] = []
        self.mgblocks: list[Array] = []
        offset = 0
        for blk in template.blocks:
            rows, d = blk.shape
            self.mblocks.append(self.thetaT[offset : offset + rows * d].reshape(rows, d, K))
            self.mgblocks.append(self.gradT[offset : offset + rows * d].reshape(rows, d, K))
            offset += rows * d

    def run(self, ws: StackedWorkspace | MinorWorkspace) -> Array:  # type: ignore[override]
        if not isinstance(ws, MinorWorkspace):
            return super().run(ws)
        np.copyto(self.thetaT, self.theta.T)
        K, m = self.K, ws.m
        w0 = self.mblocks[0]
        np.dot(ws.rows, w0.reshape(w0.shape[0], -1), out=ws.first)
        first = ws.first.reshape(m, -1, K)
        last = len(self.mblocks) - 1
        if last == 0:
            return self._f_output(first, ws.out)
        self._f_hidden(first, ws.outs[0])
        for l in range(1, last + 1):
            o = ws.outs[l]
            _forward_sum(ws.ins[l], self.mblocks[l], ws.fprods[l], o)
            (self._f_output if l == last else self._f_hidden)(o, o)
        return ws.out

    def backprop(self, ws: StackedWorkspace | MinorWorkspace) -> None:  # type: ignore[override]
        if not isinstance(ws, MinorWorkspace):
            super().backprop(ws)
            return
        m = ws.m
        for l in range(len(self.mblocks) - 1, 0, -1):
            dl = ws.deltas[l]
            prods = ws.gprods[l]
            np.multiply(ws.ins[l][:, :, None, :], dl[:, None], out=prods)
            _sum_samples(prods, self.lanes[l], ws.gsum[l], self.mgblocks[l])
            j = l - 1
            dj = ws.deltas[j]
            # one output unit: each entry is one product w * delta
            np.multiply(self.mblocks[l][None, 1:, 0], dl, out=dj)
            self._grad_hidden(ws.outs[j], dj, ws.tmps[j])
        g0 = self.mgblocks[0]
        np.dot(ws.ins[0], ws.deltas[0].reshape(m, -1), out=g0.reshape(g0.shape[0], -1))
        np.copyto(self.grad, self.gradT.T)
        if self.free is not None:
            self.grad *= self.free

    def output_delta(  # type: ignore[override]
        self,
        ws: StackedWorkspace | MinorWorkspace,
        rows_sum_to_one: bool,
        factor: float | Array = 1.0,
    ) -> None:
        if isinstance(ws, MinorWorkspace) and isinstance(factor, np.ndarray):
            factor = factor.reshape(-1)  # (K, 1, 1) per member -> the last axis here
        super().output_delta(ws, rows_sum_to_one, factor)  # type: ignore[arg-type]


def _forward_sum(a: Array, w: Array, prods: Array, out: Array) -> None:
    """out[p, j, k] = sum_i a[p, i, k] w[i, j, k], a[:, 0] = 1: products (m, rows, d, K), the
    bias row's 1 * w exact, then a reduction over i, which adds them in turn (the single
    net's gemv order where ``fits`` verified it)."""
    np.multiply(a[:, :, None, :], w[None], out=prods)
    np.add.reduce(prods, axis=1, out=out)


def _sum_samples(prods: Array, lanes: int, tmp: Array, out: Array) -> None:
    """out = sum over axis 0 of prods: ``lanes`` (1 or 2) interleaved partial sums (samples
    p, p + lanes, ...), each a reduction that adds its samples in turn, then the second
    partial sum added to the first."""
    if lanes == 1:
        np.add.reduce(prods, axis=0, out=out)
        return
    np.add.reduce(prods[0::2], axis=0, out=out)
    np.add.reduce(prods[1::2], axis=0, out=tmp)
    out += tmp


class MinorScorer(StackedScorer):
    """``StackedScorer`` over a ``MinorWorkspace`` (the training set, full batch)."""

    def __init__(self, template: Network, K: int, X: Array, Y: Array, kind: str | None) -> None:
        ws = MinorWorkspace(template, K, X.shape[0])
        super().__init__(template, K, X, Y, kind, ws=ws)  # type: ignore[arg-type]

    def head(self, k: int) -> MinorScorer:
        return MinorScorer(self.template, k, self.X, self.Y, self.kind)

    def _score_ws(self, ws, targets):  # type: ignore[no-untyped-def, override]
        out, diff = ws.out, ws.diff
        np.subtract(out, ws.y, out=diff)
        # the loss as StackedScorer sums it: per member, K ddot calls on (K, d, m) copies
        o_mm, y_mm, d_mm = ws.major
        np.copyto(d_mm, diff.transpose(2, 1, 0))
        if self.cost == "cross_entropy":
            np.copyto(o_mm, out.transpose(2, 1, 0))
            np.copyto(y_mm, ws.y.transpose(2, 1, 0))
        total = cost_sums(self.cost, self.act, o_mm, y_mm, d_mm)
        absd = ws.tmps[-1]
        np.abs(diff, out=absd)
        rowmax = (
            absd[:, 0] if absd.shape[1] == 1 else np.maximum.reduce(absd, axis=1, out=ws.rowmax)
        )
        max_err = np.maximum.reduce(rowmax, axis=0)  # max is exact in any order; nan propagates
        if self.kind == "binary":
            np.less(rowmax, 0.5, out=ws.flags)
            return total, np.add.reduce(ws.flags, axis=0), max_err
        if self.kind == "argmax":
            hits = out.argmax(axis=1) == targets[:, None]
            return total, np.count_nonzero(hits, axis=0), max_err
        return total, np.zeros(rowmax.shape[1]), max_err


def fits(template: Network, K: int, m: int) -> list[int] | None:
    """The gradient lanes of each layer if every member-minor product gives the single
    net's bits for these sizes (K members, m patterns, full batch), else None."""
    sizes = template.layer_sizes
    if template.skip_connections or not 2 <= m <= MAX_PATTERNS or sizes[-1] != 1:
        return None
    if any(d != 1 for d in sizes[2:]):  # each later layer one unit: exact hidden deltas
        return None
    key = (K, m, tuple(sizes))
    if key in _FITS:
        return _FITS[key]
    verdict: list[int] | None = [0] + [0] * (len(sizes) - 2)
    if not (
        _first_ok("forward", K, 1 + sizes[0], sizes[1], m)
        and _first_ok("grad", K, 1 + sizes[0], sizes[1], m)
    ):
        verdict = None
    for l in range(1, len(sizes) - 1):
        if verdict is None:
            break
        rows, d = 1 + sizes[l], sizes[l + 1]
        lanes = next((n for n in (1, 2) if _grad_ok(K, rows, d, m, n)), None)
        if lanes is None or not _forward_ok(K, rows, d, m):
            verdict = None
        else:
            verdict[l] = lanes
    _FITS[key] = verdict
    return verdict


def _with_ones(a: Array) -> Array:
    """A trial input block with its bias row of ones, as every layer's input has."""
    a = a.copy(order="K")  # keeps a sample-major block sample-major
    a[..., 0, :] = 1.0
    return a


def _first_ok(which: str, K: int, rows: int, d: int, m: int) -> bool:
    """Layer 0 as one GEMM over all members against each member's own np.dot, in this
    module's layouts: forward ``rows_in (m, rows) @ W (rows, d*K)``, gradient
    ``rows_in.T @ deltas (m, d*K)``."""
    rng = np.random.default_rng(12345)
    for x, w, dl in zip(
        _trial_inputs(rng, (rows, m), sample_major=True),
        _trial_inputs(rng, (K, rows, d)),
        _trial_inputs(rng, (K, d, m)),
        strict=True,
    ):
        x = _with_ones(x)
        xs = np.ascontiguousarray(x.T)  # (m, rows): rows_in
        if which == "forward":
            ref = np.stack([np.dot(w[k].T, x) for k in range(K)])  # (K, d, m)
            wm = np.ascontiguousarray(w.transpose(1, 2, 0)).reshape(rows, d * K)
            fast = np.dot(xs, wm).reshape(m, d, K).transpose(2, 1, 0)
        else:
            ref = np.stack([np.dot(x, dl[k].T) for k in range(K)])  # (K, rows, d)
            dm = np.ascontiguousarray(dl.transpose(2, 1, 0)).reshape(m, d * K)
            fast = np.dot(xs.T, dm).reshape(rows, d, K).transpose(2, 0, 1)
        if not _same_bits(ref, np.ascontiguousarray(fast)):
            return False
    return True


def _forward_ok(K: int, rows: int, d: int, m: int) -> bool:
    """The later layers' forward sums against each member's np.dot. With the real K: NumPy
    picks a reduction's inner loop by the shapes (for K = 1 it is the summed axis itself,
    which it adds pairwise from 8 numbers up)."""
    rng = np.random.default_rng(12345)
    for a, w in zip(
        _trial_inputs(rng, (K, rows, m)), _trial_inputs(rng, (K, rows, d)), strict=True
    ):
        a = _with_ones(a)
        ref = np.stack([np.dot(w[k].T, a[k]) for k in range(K)])  # (K, d, m)
        a_mm = np.ascontiguousarray(a.transpose(2, 1, 0))  # (m, rows, K)
        w_mm = np.ascontiguousarray(w.transpose(1, 2, 0))  # (rows, d, K)
        out = np.empty((m, d, K))
        _forward_sum(a_mm, w_mm, np.empty((m, rows, d, K)), out)
        if not _same_bits(ref, np.ascontiguousarray(out.transpose(2, 1, 0))):
            return False
    return True


def _grad_ok(K: int, rows: int, d: int, m: int, lanes: int) -> bool:
    """A later layer's one-unit gradient summed in ``lanes`` against np.dot (real K, as
    ``_forward_ok``)."""
    rng = np.random.default_rng(12345)
    for a, dl in zip(_trial_inputs(rng, (K, rows, m)), _trial_inputs(rng, (K, d, m)), strict=True):
        a = _with_ones(a)
        ref = np.stack([np.dot(a[k], dl[k].T) for k in range(K)])  # (K, rows, d)
        a_mm = np.ascontiguousarray(a.transpose(2, 1, 0))  # (m, rows, K)
        d_mm = np.ascontiguousarray(dl.transpose(2, 1, 0))  # (m, d, K)
        prods = a_mm[:, :, None, :] * d_mm[:, None]
        out = np.empty((rows, d, K))
        _sum_samples(prods, lanes, np.empty((rows, d, K)), out)
        if not _same_bits(ref, np.ascontiguousarray(out.transpose(2, 0, 1))):
            return False
    return True
