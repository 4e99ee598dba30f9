"""One net's buffers and its per-layer maths: the forward and the backward pass on plain arrays.

See ``engine.network`` for the parameter layout these act on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import Network

Array = np.ndarray


class Workspace:
    """Preallocated activation and delta buffers for batches of exactly ``m`` rows.

    Inside a workspace activations are stored unit-major, shape (units, m): each
    layer's input is [1; sources] (1 + fan_in_l, m) with a leading row of ones, and
    a hidden layer's output is a contiguous row block of the next input buffer, so
    ``np.dot`` (cheaper per call than ``np.matmul`` on small nets) writes straight
    into it. ``x`` (d_in, m) and ``y`` (d_out, m) receive the batch, transposed.

    Without skip connections the input block is stored the other way round, one sample
    per row: ``rows`` (m, 1 + d_in) holds [1, x] and ``ins[0]`` is its transposed view.
    BLAS reads either layout at the same speed, and rows of X then go in as rows
    (``load_x``), a plain copy instead of a transposing one. With skip connections the
    input shares one unit-major buffer with the hidden outputs and ``rows`` is None.
    """

    def __new__(cls, net: Network, m: int) -> Workspace:
        # A network with layers of its own (engine.tied, engine.recurrent) names the buffers
        # it needs; the trainers and scorers then build them with the same Workspace(net, m).
        kind = getattr(net, "workspace_class", cls)
        return object.__new__(kind if issubclass(kind, cls) else cls)

    def __init__(self, net: Network, m: int) -> None:
        sizes = net.layer_sizes
        L = len(sizes) - 1
        self.m = m
        empty = partial(np.empty, dtype=net.dtype)  # every buffer in the net's dtype
        self.ins: list[Array] = []
        self.outs: list[Array] = []
        self.rows: Array | None = None
        if net.skip_connections:
            buf = empty((1 + sum(sizes[:-1]), m))
            buf[0] = 1.0
            for l in range(L):
                self.ins.append(buf[: 1 + net.fan_ins[l]])
            for l in range(L - 1):
                start = 1 + sum(sizes[: l + 1])
                self.outs.append(buf[start : start + sizes[l + 1]])
        else:
            self.rows = empty((m, 1 + sizes[0]))
            self.rows[:, 0] = 1.0
            self.ins.append(self.rows.T)
            for l in range(1, L):
                buf = empty((1 + sizes[l], m))
                buf[0] = 1.0
                self.ins.append(buf)
            for l in range(L - 1):
                self.outs.append(self.ins[l + 1][1:])
        self.out = empty((sizes[-1], m))
        self.outs.append(self.out)
        self.x = self.ins[0][1 : 1 + sizes[0]]
        self.y = empty((sizes[-1], m))
        self.diff = empty((sizes[-1], m))
        self.deltas = [empty((d, m)) for d in sizes[1:]]
        self.deltasT = [d.T for d in self.deltas]
        self.tmps = [empty((d, m)) for d in sizes[1:]]
        self.rowmax = empty(m)  # per-pattern largest |o - e|, for the metrics
        self.flags = np.empty(m, dtype=bool)

    def load_x(self, rows: Array) -> None:
        """Copy (m, d_in) rows of X into the input block."""
        if self.rows is not None:
            np.copyto(self.rows[:, 1:], rows)
        else:
            np.copyto(self.x, rows.T)


def forward_layers(
    blocksT: Sequence[Array],
    ins: Sequence[Array],
    outs: Sequence[Array],
    f_hidden: Callable[[Array, Array], Array],
    f_output: Callable[[Array, Array], Array],
    product: Callable[..., Array] = np.dot,
) -> Array:
    """i_l = [b_l; W_l]^T @ [1; sources_l], o_l = f(i_l), in place; returns the outputs.

    ``blocksT[l]``: (d_l, 1 + fan_in_l); ``ins[l]``: (1 + fan_in_l, m); ``outs[l]``: (d_l, m).
    ``engine.stacked`` passes stacked (K, ...) arrays and ``product=np.matmul`` (with skip
    connections), which runs the same BLAS call per member as ``np.dot`` does for one net
    (so the same bits).
    """
    dot = product
    last = len(blocksT) - 1
    for l in range(last):
        o = outs[l]
        dot(blocksT[l], ins[l], out=o)
        f_hidden(o, o)
    o = outs[last]
    dot(blocksT[last], ins[last], out=o)
    f_output(o, o)
    return o


def backward_layers(
    gblocks: Sequence[Array],
    ins: Sequence[Array],
    outs: Sequence[Array],
    deltas: Sequence[Array],
    deltasT: Sequence[Array],
    tmps: Sequence[Array],
    grad_hidden: Callable[[Array, Array, Array], None],
    back_views: Sequence[tuple[Array, list[tuple[int, Array]]]],
    product: Callable[..., Array] = np.dot,
) -> None:
    """Given the output delta in ``deltas[-1]`` (d_L, m), fill ``gblocks`` with dE/d[b; W].

    dE/dw_ij = o_i delta_j for every layer in one product ([1; o] @ delta^T);
    delta_j = f'(i_j) sum_k delta_k w_jk for hidden units, where k runs over every
    later layer the unit feeds (only the next one without skip connections).
    ``back_views[j]``: (rows of W_{j+1} holding h_j's outgoing weights, and the
    same for each further layer k fed by h_j (skip connections)). ``product``: as in
    ``forward_layers`` (a population's backward pass is ``engine.stacked``'s own).
    """
    dot = product
    for l in range(len(gblocks) - 1, -1, -1):
        dot(ins[l], deltasT[l], out=gblocks[l])
        if l == 0:
            break
        j = l - 1  # the hidden layer whose delta is needed next
        first, further = back_views[j]
        dj = deltas[j]
        dot(first, deltas[l], out=dj)
        tmp = tmps[j]
        for k, rows in further:
            dot(rows, deltas[k], out=tmp)
            dj += tmp
        grad_hidden(outs[j], dj, tmp)
