"""Weight sharing over a 2-D retina: the T-C problem's hidden layer (PDP vol. 1 ch. 8).

A tied layer has ``kernels`` feature maps. Every map has one unit per position of the
retina, each seeing a ``field`` x ``field`` patch of it, and all the units of a map share
one kernel of field*field weights and one bias. The delta rule is unchanged: a shared
weight is one weight used in many places, so its gradient is the sum over those places
of o_i delta_j, which one matrix product over every (position, pattern) column gives.

Layout: ``theta`` starts with the kernel block (1 + field^2, kernels), row 0 the biases
and rows 1: the kernels, each column one kernel flattened row by row over the field;
the full layers after it (``hidden`` then the outputs) follow as in ``engine.network``.
``params`` is [K, k_bias, W1, b1, ...]. The tied layer's units are numbered map-major
(unit = map * positions + position, positions row by row), which is the order of
``torch.nn.functional.conv2d(...).flatten(1)``.

``wrap=False``: a unit at every position where the field fits inside the retina
((H - f + 1) x (W - f + 1) positions, a "valid" convolution). ``wrap=True``: the retina
is a torus and there is a unit centred on every pixel (H x W positions), so the layer is
exactly translation-equivariant, as the T-C problem's wrap-around retina needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from .initializers import init_layer
from .layers import Workspace, forward_layers
from .network import Network

Array = np.ndarray


def field_indices(height: int, width: int, field: int, wrap: bool) -> tuple[Array, int, int]:
    """(idx, rows, cols): ``idx[q, p]`` is the pixel (row-major index into the retina) that
    weight q of the field sees at position p; positions form a rows x cols grid."""
    if wrap:
        rows, cols = height, width
        offsets = np.arange(field) - field // 2  # centred: -1, 0, 1 for a 3x3 field
    else:
        rows, cols = height - field + 1, width - field + 1
        offsets = np.arange(field)  # anchored at the field's top-left corner
    if rows < 1 or cols < 1:
        raise ValueError(
            f"a {field}x{field} field does not fit a {height}x{width} retina without wrap"
        )
    r = np.arange(rows)[None, None, :, None] + offsets[:, None, None, None]
    c = np.arange(cols)[None, None, None, :] + offsets[None, :, None, None]
    if wrap:
        r, c = r % height, c % width
    idx = (r * width + c).reshape(field * field, rows * cols)
    return np.ascontiguousarray(idx), rows, cols


class TiedWorkspace(Workspace):
    """Buffers of a TiedNetwork for ``m`` rows: the retina ``x`` (d_in, m), the patches
    [1; pixels] (1 + f^2, positions * m), and the full layers' buffers behind them."""

    def __init__(self, net: TiedNetwork, m: int) -> None:  # type: ignore[override]
        Workspace.__init__(self, net.dense_shape, m)  # type: ignore[arg-type]
        units = net.dense_shape.layer_sizes[0]
        empty = partial(np.empty, dtype=net.dtype)  # every buffer in the net's dtype
        first = empty((1 + units, m))  # [1; tied units], unit-major like hidden layers
        first[0] = 1.0
        self.ins[0] = first
        self.rows = None
        self.tied = first[1:]
        self.x = empty((net.layer_sizes[0], m))
        ff, positions = net.idx.shape
        self.patches = empty((1 + ff, positions * m))
        self.patches[0] = 1.0
        self.pixels = self.patches[1:].reshape(ff, positions, m)
        self.tied_delta = empty((units, m))
        self.tied_tmp = empty((units, m))


class TiedNetwork(Network):
    """A retina, a tied layer of ``kernels`` maps, full ``hidden`` layers, ``n_out`` outputs.

    ``retina``: (height, width); inputs are its pixels row by row. The tied layer uses
    ``activation``, as every hidden layer does. Trains with ``engine.train`` (a
    population of these is trained one net at a time, see ``stackable``). ``dtype``: as
    ``Network``'s, the kernels included (drawn in float64 after the full layers, rounded).
    """

    workspace_class = TiedWorkspace
    stackable = False  # engine.stacked has no tied layer: populations of one only

    def __init__(
        self,
        retina: Sequence[int],
        kernels: int,
        hidden: Sequence[int],
        n_out: int,
        *,
        field: int = 3,
        wrap: bool = False,
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        cost: str = "sse",
        init: float | str = 0.3,
        rng: np.random.Generator,
        dtype: str | np.dtype = "float64",
    ) -> None:
        height, width = (int(v) for v in retina)
        if kernels < 1 or field < 1:
            raise ValueError(f"kernels and field must be >= 1, got {kernels} and {field}")
        self.retina, self.kernels, self.field, self.wrap = (height, width), kernels, field, wrap
        self.idx, self.map_rows, self.map_cols = field_indices(height, width, field, wrap)
        positions = self.idx.shape[1]
        ff = field * field
        dense = [kernels * positions, *[int(h) for h in hidden], int(n_out)]
        super().__init__(
            dense,
            activation=activation,
            output_activation=output_activation,
            cost=cost,
            init=init,
            rng=rng,
            lead=(1 + ff) * kernels,
            dtype=dtype,
        )
        self.dense_shape = SimpleNamespace(
            layer_sizes=self.layer_sizes,
            skip_connections=False,
            fan_ins=self.fan_ins,
            dtype=self.dtype,
        )
        self.layer_sizes = (height * width, *self.layer_sizes)
        self.kernel_block = self.theta[: self.lead].reshape(1 + ff, kernels)
        self.kernel_grad = self.grad[: self.lead].reshape(1 + ff, kernels)
        self.kernel_blockT = self.kernel_block.T
        W, b = init_layer(self.init, ff, kernels, rng)
        self.kernel_block[1:] = W
        self.kernel_block[0] = b
        self.weight_indicator[:kernels] = 0.0  # the kernel biases (row 0) are not decayed

    @property
    def params(self) -> list[Array]:
        """[kernels (f^2, K), kernel biases (K,), W1, b1, ...] as views into ``theta``."""
        return [self.kernel_block[1:], self.kernel_block[0], *super().params]

    def kernel_grids(self) -> list[Array]:
        """Each kernel as a field x field grid (row by row over the retina)."""
        return [
            self.kernel_block[1:, k].reshape(self.field, self.field).copy()
            for k in range(self.kernels)
        ]

    def __repr__(self) -> str:
        wrap = ", wrap=True" if self.wrap else ""
        return (
            f"TiedNetwork(retina={self.retina}, kernels={self.kernels}, field={self.field}"
            f"{wrap}, layers={list(self.layer_sizes)}, activation={self.activation!r}, "
            f"output_activation={self.output_activation!r}, cost={self.cost!r})"
        )

    def run(self, ws: TiedWorkspace) -> Array:  # type: ignore[override]
        """Patches, the tied layer (one product for every map, position and row), then the
        full layers."""
        np.take(ws.x, self.idx, axis=0, out=ws.pixels, mode="clip")
        K = self.kernels
        tied = ws.tied.reshape(K, -1)
        np.dot(self.kernel_blockT, ws.patches, out=tied)
        self._f_hidden(ws.tied, ws.tied)
        return forward_layers(self.blocksT, ws.ins, ws.outs, self._f_hidden, self._f_output)

    def backprop(self, ws: TiedWorkspace) -> None:  # type: ignore[override]
        """The full layers' gradients, then the tied units' deltas and the kernels' gradient:
        summed over positions and rows by one product."""
        super().backprop(ws)  # the full layers (a tied net has no masks)
        np.dot(self.blocks[0][1:], ws.deltas[0], out=ws.tied_delta)
        self._grad_hidden(ws.tied, ws.tied_delta, ws.tied_tmp)
        np.dot(ws.patches, ws.tied_delta.reshape(self.kernels, -1).T, out=self.kernel_grad)

    def hidden(self, X: Array) -> list[Array]:
        """[tied layer (n, kernels * positions), h1, ...] for inputs X."""
        ws = self.run_set(X)
        return [ws.tied.T.copy(), *[o.T.copy() for o in ws.outs[:-1]]]

    def gradient(self, X: Array, Y: Array) -> list[Array]:
        """dE/dparams over the whole set, in ``params`` order and shapes."""
        rest = super().gradient(X, Y)
        return [self.kernel_grad[1:].copy(), self.kernel_grad[0].copy(), *rest]

    def architecture(self) -> dict[str, Any]:
        return {
            "kind": "tied",
            "retina": list(self.retina),
            "kernels": self.kernels,
            "field": self.field,
            "wrap": self.wrap,
            "hidden": list(self.layer_sizes[2:-1]),
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "output_activation": self.output_activation,
            "cost": self.cost,
        }
