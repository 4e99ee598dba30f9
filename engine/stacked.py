"""K networks of one shape as stacked arrays: the numerical core of population training.

Every member's parameters are one row of ``theta: (K, P)``, laid out exactly as a single
``Network.theta``; the per-layer blocks are (K, 1 + fan_in, d) views into it. A matrix
product is ``np.matmul`` over the leading K axis, which makes the same BLAS call per member
that ``np.dot`` makes for one net, and every other operation is elementwise or reduces over
one member's own axes in the single net's order. So each member's numbers are bit for bit
those of ``engine.train`` on that member alone (tests/engine/test_population*.py hold this).

Why the passes here are not ``engine.network.forward_layers`` / ``backward_layers``: those
are the single net's sequence of ``np.dot`` calls. Run over K members with ``np.matmul``
they give the right bits, and the forward pass with skip connections does reuse
``forward_layers``; but the population's speed comes from doing some steps in another form
that gives the same bits, which the shared functions have no place for:

* a hidden layer's outputs are a strided (K, d, m) view into the next layer's input buffer,
  on which every ufunc is several times slower: f runs over the whole contiguous buffer and
  the row of ones is written back (elementwise, the same values);
* when all members see the same input (full batch, no skip connections) layer 0's forward
  and gradient products are one GEMM over all members instead of K small ones;
* a product with an inner dimension of 1 (one output unit, one pattern per update) is an
  outer product, one multiply per entry: a broadcast multiply, not K tiny BLAS calls; a
  one-unit gradient over several patterns is one ``np.einsum`` for all members.

The GEMM and the einsum are used only for sizes where ``engine.verify`` found, at first use,
that they give each member's own ``np.dot`` bits (OpenBLAS picks its kernel, and so its
order of accumulation, by the sizes of a call). Adding hooks for these to the single net's
functions would put a branch per layer into every single-net step for nothing.

Shapes: activations (K, units, m) (unit-major, as in ``engine.network.Workspace``);
per-member scalars (learning rate, momentum) are (K, 1) columns broadcast over the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from .activations import DERIVATIVES, FORWARD
from .network import Network, forward_layers
from .verify import _einsum_ok, _gemm_ok, _sample_major

__all__ = ["Stack", "StackedWorkspace", "_gemm_ok", "head", "same_shape", "stack_thetas"]

Array = np.ndarray
Step = Callable[[], object]  # one NumPy call of a planned pass, arguments bound


def same_shape(a: Network, b: Network) -> bool:
    """True when two networks can train in one population (layers, units, cost, masks,
    dtype)."""
    if a.architecture() != b.architecture() or a.dtype != b.dtype or len(a.masks) != len(b.masks):
        return False
    for ma, mb in zip(a.masks, b.masks, strict=True):
        if ma is None or mb is None:
            if ma is not mb:
                return False
        elif not np.array_equal(ma, mb):
            return False
    return True


class Stack:
    """The parameters of K same-shape networks and their stacked forward/backward passes."""

    def __init__(self, template: Network, theta: Array) -> None:
        self.template = template
        self.K = theta.shape[0]
        self.theta = theta
        self.grad = np.zeros_like(theta)
        self.blocks: list[Array] = []
        self.gblocks: list[Array] = []
        offset = 0
        for blk in template.blocks:
            size = blk.size
            self.blocks.append(theta[:, offset : offset + size].reshape(self.K, *blk.shape))
            self.gblocks.append(self.grad[:, offset : offset + size].reshape(self.K, *blk.shape))
            offset += size
        self.blocksT = [b.transpose(0, 2, 1) for b in self.blocks]
        sizes, skip = template.layer_sizes, template.skip_connections
        L = len(sizes) - 1
        self.back_views: list[tuple[Array, list[tuple[int, Array]]]] = []
        for j in range(L - 1):  # the same rows as Network.back_views, for all members
            start = 1 + (sum(sizes[1 : j + 1]) + sizes[0] if skip else 0)
            stop = start + sizes[j + 1]
            further = range(j + 2, L) if skip else []
            self.back_views.append(
                (
                    self.blocks[j + 1][:, start:stop],
                    [(k, self.blocks[k][:, start:stop]) for k in further],
                )
            )
        self.free = template.free
        self._wf: Array | None = None  # layer 0's weights laid out for the shared GEMM
        self._grads: dict[int, Array] = {}
        self._gemm: dict[tuple[str, int], bool] = {}
        # per workspace: the (forward, backward) calls, planned at its first use
        self._plans: dict[StackedWorkspace, tuple[list[Step], list[Step]]] = {}
        self._f_hidden = FORWARD[template.activation]
        self._f_output = FORWARD[template.output_activation]
        self._grad_hidden = DERIVATIVES[template.activation]

    def run(self, ws: StackedWorkspace) -> Array:
        """Forward pass of every member on the inputs in ``ws.x``; returns ``ws.out``."""
        if self.template.skip_connections:
            return forward_layers(
                self.blocksT, ws.ins, ws.outs, self._f_hidden, self._f_output, product=np.matmul
            )
        for step in self._plan(ws)[0]:
            step()
        return ws.out

    def backprop(self, ws: StackedWorkspace) -> None:
        """Fill ``grad`` (K, P) from the output deltas in ``ws.deltas[-1]``, masks applied.

        ``engine.network.backward_layers`` with one shortcut: a product whose inner
        dimension is 1 (one output unit, or one pattern per update) is an outer product,
        each entry a single a*b, so a broadcast multiply gives the same values (at most the
        sign of a zero differs) for a fraction of K tiny BLAS calls.
        """
        for step in self._plan(ws)[1]:
            step()

    def _plan(self, ws: StackedWorkspace) -> tuple[list[Step], list[Step]]:
        plan = self._plans.get(ws)
        if plan is None:
            skip = self.template.skip_connections  # its forward pass is forward_layers
            forward = [] if skip else self._forward_steps(ws)
            plan = self._plans[ws] = (forward, self._backward_steps(ws))
        return plan

    # The passes are planned once per workspace (a Stack lives until the members change,
    # its workspaces as long): every view, shape and verified choice below is made here, and
    # an epoch is only the NumPy calls of the list, in the order the passes make them.

    def _forward_steps(self, ws: StackedWorkspace) -> list[Step]:
        """The forward pass without skip connections. A hidden layer's outputs are rows 1:
        of the next layer's input buffer, a strided (K, d, m) view on which every ufunc is
        several times slower than on the whole contiguous buffer. So f runs over the whole
        buffer and the row of ones is put back: elementwise, the hidden values are the same
        bits."""
        steps: list[Step] = []
        last = len(self.blocksT) - 1
        f = self._f_hidden
        for l in range(last):
            nxt = ws.ins[l + 1]
            if l == 0 and self._gemm_first(ws, "forward"):
                # one GEMM for all members (the input is shared), f on its contiguous
                # result, then into the strided hidden rows: the row of ones is never touched
                wf = self._forward_buffer()
                K, d, m = ws.first.shape
                r = ws.first.reshape(K * d, m)
                steps += [
                    partial(np.copyto, _units(wf), _units(self.blocks[0]).T),
                    partial(np.dot, wf.reshape(wf.shape[0], -1).T, ws.ins[0], r),
                    partial(f, r, r),
                    partial(np.copyto, nxt.reshape(K, -1)[:, m:], r.reshape(K, d * m)),
                ]
                continue
            steps += [
                partial(np.matmul, self.blocksT[l], ws.ins[l], out=ws.outs[l]),
                partial(f, nxt, nxt),
                partial(np.copyto, nxt[:, 0], 1.0),
            ]
        o = ws.outs[last]
        steps += [
            partial(np.matmul, self.blocksT[last], ws.ins[last], out=o),
            partial(self._f_output, o, o),
        ]
        return steps

    def _backward_steps(self, ws: StackedWorkspace) -> list[Step]:
        """``backprop``'s calls for this workspace, layer by layer from the output."""
        grad_hidden, ins, deltas, tmps = self._grad_hidden, ws.ins, ws.deltas, ws.tmps
        steps: list[Step] = []
        for l in range(len(self.gblocks) - 1, -1, -1):
            if l == 0 and self._gemm_first(ws, "grad"):
                steps += self._grad_first(ws)
                break
            a, dl, gb = ins[l], deltas[l], self.gblocks[l]
            if dl.shape[1] == 1 and _einsum_ok(self.K, a.shape[1], ws.m, _sample_major(a), a.dtype):
                steps.append(partial(np.einsum, "kip,kp->ki", a, dl[:, 0], out=gb[..., 0]))
            else:
                steps += _product(a, ws.deltasT[l], gb)
            if l == 0:
                break
            j = l - 1
            first, further = self.back_views[j]
            dj = deltas[j]
            steps += _product(first, deltas[l], dj)
            tmp = tmps[j]
            for k, rows in further:
                steps += _product(rows, deltas[k], tmp)
                steps.append(partial(np.add, dj, tmp, out=dj))
            # layer 0's outputs after the shared GEMM are also in the contiguous ws.first,
            # where f' costs a third of its time on the strided rows of the next input
            outs = ws.first if j == 0 and self._gemm_first(ws, "forward") else ws.outs[j]
            steps.append(partial(grad_hidden, outs, dj, tmp))
        if self.free is not None:
            steps.append(partial(np.multiply, self.grad, self.free, out=self.grad))
        return steps

    def _gemm_first(self, ws: StackedWorkspace, which: str) -> bool:
        """Whether layer 0's products run as one GEMM over all members: only on a shared
        input (``ws.ins[0]`` 2-D) and where that GEMM is verified to give the bits of the
        per-member products for these sizes (``_gemm_ok``)."""
        x = ws.ins[0]
        if x.ndim != 2 or self.template.skip_connections:
            return False
        key = (which, ws.m)
        ok = self._gemm.get(key)
        if ok is None:
            ok = self._gemm[key] = _gemm_ok(
                which, self.K, x.shape[0], self.blocks[0].shape[2], ws.m, _sample_major(x), x.dtype
            )
        return ok

    def _forward_buffer(self) -> Array:
        """Layer 0's weights of all members as one (rows, K, d) matrix for the GEMM."""
        if self._wf is None:
            rows, d = self.blocks[0].shape[1:]
            self._wf = np.empty((rows, self.K, d), self.theta.dtype)
        return self._wf

    def _grad_first(self, ws: StackedWorkspace) -> list[Step]:
        """dE/d[b; W] of layer 0 for all members from one GEMM on the shared input."""
        x, d0 = ws.ins[0], ws.deltas[0]
        rows, d = self.blocks[0].shape[1:]
        g = self._grads.get(ws.m)
        if g is None:
            g = self._grads[ws.m] = np.empty((rows, self.K * d), self.theta.dtype)
        return [
            partial(np.dot, x, d0.reshape(-1, ws.m).T, g),
            partial(np.copyto, _units(self.gblocks[0]), _units(g.reshape(rows, self.K, d)).T),
        ]

    def output_delta(
        self,
        ws: StackedWorkspace,
        rows_sum_to_one: bool,
        factor: float | Array = 1.0,
        margin: float | Array = 0.0,
    ) -> None:
        """``Network.output_delta``, whose arithmetic broadcasts over the members; ``factor``
        and ``margin``: a float, or per member (K, 1, 1)."""
        self.template.output_delta(ws, rows_sum_to_one, factor, margin)  # type: ignore[arg-type]


def _units(a: Array) -> Array:
    """(..., d) floats with a contiguous last axis as (...) opaque d-number items: a
    transposing copy then moves whole rows of d numbers per step (bits untouched), several
    times faster than numpy's copy with an inner loop of d elements."""
    return a.view(np.dtype((np.void, a.itemsize * a.shape[-1])))[..., 0]


def _product(a: Array, b: Array, out: Array) -> list[Step]:
    """The calls that write the stacked product a @ b into ``out``."""
    if a.shape[-1] != 1:
        return [partial(np.matmul, a, b, out=out)]
    if a.ndim == 3 and a.shape[-2] <= 4:
        # an outer product (K, r, 1) x (K, 1, c) with few rows: one multiply per row,
        # each (K, c) by a (K, 1) column, takes half the work of one broadcast over both
        return [partial(np.multiply, b[:, 0], a[:, i], out=out[:, i]) for i in range(a.shape[-2])]
    return [partial(np.multiply, a, b, out=out)]


class StackedWorkspace:
    """``engine.network.Workspace`` for K members: buffers (K, units, m).

    ``shared_input``: the members see the same rows (full batch, no skip connections), so the
    input block is one (1 + d_in, m) array that matmul broadcasts, not K copies. Without
    skip connections the input block is stored sample-major as in ``Workspace``: ``rows``
    (m, 1 + d_in), or (K, m, 1 + d_in) when each member has its own batch.
    """

    def __init__(self, net: Network, K: int, m: int, shared_input: bool = False) -> None:
        sizes = net.layer_sizes
        L = len(sizes) - 1
        self.m = m
        self.ins: list[Array] = []
        self.outs: list[Array] = []
        self.rows: Array | None = None
        empty = partial(np.empty, dtype=net.dtype)  # every float buffer in the net's dtype
        if net.skip_connections:
            buf = empty((K, 1 + sum(sizes[:-1]), m))
            buf[:, 0] = 1.0
            for l in range(L):
                self.ins.append(buf[:, : 1 + net.fan_ins[l]])
            for l in range(L - 1):
                start = 1 + sum(sizes[: l + 1])
                self.outs.append(buf[:, start : start + sizes[l + 1]])
        else:
            self.rows = empty((m, 1 + sizes[0]) if shared_input else (K, m, 1 + sizes[0]))
            self.rows[..., 0] = 1.0
            self.ins.append(np.swapaxes(self.rows, -1, -2))
            for l in range(1, L):
                buf = empty((K, 1 + sizes[l], m))
                buf[:, 0] = 1.0
                self.ins.append(buf)
            for l in range(L - 1):
                self.outs.append(self.ins[l + 1][:, 1:])
        self.out = empty((K, sizes[-1], m))
        self.outs.append(self.out)
        self.x = self.ins[0][..., 1 : 1 + sizes[0], :]
        # layer 0's outputs as the shared-input GEMM leaves them (see Stack.run)
        self.first: Array = empty((K, sizes[1], m) if shared_input else (0, 0, 0))
        self.y = empty((K, sizes[-1], m))
        self.diff = empty((K, sizes[-1], m))
        self.deltas = [empty((K, d, m)) for d in sizes[1:]]
        self.deltasT = [d.transpose(0, 2, 1) for d in self.deltas]
        self.tmps = [empty((K, d, m)) for d in sizes[1:]]
        self.rowmax = empty((K, m))
        self.flags = np.empty((K, m))  # 0/1 as floats, counted with ``flags @ ones``
        self.ones = np.ones(m)

    def load(self, X: Array, Y: Array) -> None:
        """The whole set (X, Y) as every member's inputs and targets."""
        self.load_x(X)
        self.y[...] = Y.T

    def load_x(self, rows: Array) -> None:
        """``Workspace.load_x``: (m, d_in) rows shared by the members, or (K, m, d_in)."""
        if self.rows is not None:
            np.copyto(self.rows[..., 1:], rows)
        else:
            np.copyto(self.x, np.swapaxes(rows, -1, -2))


def head(ws: StackedWorkspace, k: int) -> StackedWorkspace:
    """The workspace of the first k members: views, nothing copied (inputs stay loaded)."""
    out = StackedWorkspace.__new__(StackedWorkspace)
    for name, value in vars(ws).items():
        if isinstance(value, np.ndarray):
            value = value[:k] if value.ndim == 3 or name in ("rowmax", "flags") else value
        elif isinstance(value, list):
            value = [a[:k] if a.ndim == 3 else a for a in value]
        setattr(out, name, value)
    return out


def stack_thetas(nets: Sequence[Network]) -> Array:
    """(K, P) copy of the members' flat parameter vectors."""
    return np.stack([net.theta for net in nets])
