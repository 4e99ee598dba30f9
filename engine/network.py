"""A layered feedforward network trained by backpropagation.

Parameters: ``params = [W1, b1, W2, b2, ...]`` with ``W_l: (fan_in_l, d_l)`` and
``b_l: (d_l,)``. Without skip connections fan_in_l = d_{l-1}; with them layer l
also receives the input and every earlier hidden layer, concatenated in that
order (input, h1, ..., h_{l-1}), so fan_in_l = d_0 + ... + d_{l-1}.

Storage: all parameters are views into one flat vector ``theta``. Layer l owns a
block of shape (1 + fan_in_l, d_l) whose row 0 is b_l and rows 1: are W_l: the
bias is the weight from a unit that is always 1, as in the paper. Activations
live in buffers with a leading column of ones, so one matrix product per layer
computes i = [1, o] @ [b; W] and one more gives both dE/dW and dE/db. Writing
into ``net.params[k][...]`` changes the network; replacing list items does not
(use ``set_params``).

The maths per layer is in the free functions ``forward_layers`` and
``backward_layers`` acting on plain arrays. A population (``engine.stacked``)
reuses ``forward_layers`` with skip connections only; its other passes are its
own, in the same order of operations (its docstring says why).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np

from .activations import (
    ACTIVATIONS,
    DERIVATIVES,
    FORWARD,
    OUTPUT_ACTIVATIONS,
    check_name,
)
from .costs import COSTS, MEAN_COSTS, cost_sum, dead_zone, output_delta
from .dtypes import as_dtype
from .initializers import check_init, init_layer
from .layers import Workspace, backward_layers, forward_layers
from .masks import normalise_masks

Array = np.ndarray

__all__ = ["EVAL_CHUNK", "Network", "Workspace", "backward_layers", "forward_layers"]

# Rows of data pushed through the net at once when only outputs are needed
# (evaluation): bounds the activation buffers for large datasets.
EVAL_CHUNK = 4096
_MAX_CACHED_WORKSPACES = 8


class Network:
    """Feedforward net; see the module docstring for the parameter layout.

    ``layer_sizes``: e.g. [6, 2, 1] (input, hidden..., output). ``init``: a float
    r for uniform(-r, r), or "xavier" / "he". ``masks``: fixed connectivity, a
    dict {layer_index: bool array of W's shape} or a list aligned with the
    layers (see ``engine.masks``). ``rng`` supplies every random draw. ``dtype``:
    "float64" (default) or "float32", the type of every array the net computes with
    (the initial weights are drawn as float64 and rounded, so a float32 net starts from
    its float64 twin's weights, rounded).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        cost: str = "sse",
        skip_connections: bool = False,
        init: float | str = 0.3,
        rng: np.random.Generator,
        masks: Mapping[int, Any] | Sequence[Any] | None = None,
        lead: int = 0,
        dtype: str | np.dtype = "float64",
    ) -> None:
        sizes = [int(s) for s in layer_sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes) or len(sizes) != len(layer_sizes):
            raise ValueError(f"layer_sizes needs >= 2 sizes, all >= 1; got {list(layer_sizes)}")
        self.layer_sizes = tuple(sizes)
        self.activation = check_name("activation", activation, ACTIVATIONS)
        self.output_activation = check_name(
            "output activation", output_activation, OUTPUT_ACTIVATIONS
        )
        self.cost = check_name("cost", cost, COSTS)
        self.skip_connections = bool(skip_connections)
        self.init = check_init(init)
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator")
        L = len(sizes) - 1
        if self.skip_connections:
            self.fan_ins = tuple(sum(sizes[: l + 1]) for l in range(L))
        else:
            self.fan_ins = tuple(sizes[:L])
        shapes = [(self.fan_ins[l], sizes[l + 1]) for l in range(L)]
        self.masks = normalise_masks(masks, shapes)

        block_sizes = [(f + 1) * d for f, d in shapes]
        # ``lead`` parameters before the layer blocks belong to a subclass's own layer (the
        # shared kernels of engine.tied): one flat theta keeps one optimizer and one state.
        self.lead = int(lead)
        self.dtype = as_dtype(dtype)
        self.theta = np.zeros(self.lead + sum(block_sizes), dtype=self.dtype)
        self.grad = np.zeros_like(self.theta)
        self.blocks: list[Array] = []
        self.gblocks: list[Array] = []
        offset = self.lead
        for (f, d), size in zip(shapes, block_sizes, strict=True):
            self.blocks.append(self.theta[offset : offset + size].reshape(f + 1, d))
            self.gblocks.append(self.grad[offset : offset + size].reshape(f + 1, d))
            offset += size
        # 1 where a parameter is free, 0 where a mask removes the connection.
        self.free: Array | None = None
        if any(m is not None for m in self.masks):
            self.free = np.ones_like(self.theta)
            free_blocks = self._split(self.free)
            for l, m in enumerate(self.masks):
                if m is not None:
                    free_blocks[l][1:][~m] = 0.0
        # 1 on weights, 0 on biases: L2 weight decay applies to weights only.
        self.weight_indicator = np.ones_like(self.theta)
        for blk in self._split(self.weight_indicator):
            blk[0] = 0.0

        for l, (f, d) in enumerate(shapes):
            W, b = init_layer(self.init, f, d, rng)
            self.blocks[l][1:] = W
            self.blocks[l][0] = b
        if self.free is not None:
            self.theta *= self.free

        self.blocksT = [blk.T for blk in self.blocks]
        self.back_views = self._back_views()
        self._f_hidden = FORWARD[self.activation]
        self._f_output = FORWARD[self.output_activation]
        self._grad_hidden = DERIVATIVES[self.activation]
        self._workspaces: dict[int, Workspace] = {}

    def _back_views(self) -> list[tuple[Array, list[tuple[int, Array]]]]:
        """back_views[j]: the rows of W_k (d_j, d_k) carrying hidden layer j's outputs to
        layer k: (those of k = j + 1, [(k, rows) for the further layers k > j + 1])."""
        sizes, L = self.layer_sizes, len(self.layer_sizes) - 1
        views = []
        for j in range(L - 1):
            start = 1 + (sum(sizes[1 : j + 1]) + sizes[0] if self.skip_connections else 0)
            stop = start + sizes[j + 1]
            further = range(j + 2, L) if self.skip_connections else []
            views.append(
                (self.blocks[j + 1][start:stop], [(k, self.blocks[k][start:stop]) for k in further])
            )
        return views

    # -- parameters ---------------------------------------------------------
    def _split(self, flat: Array) -> list[Array]:
        out, offset = [], self.lead
        for blk in self.blocks:
            out.append(flat[offset : offset + blk.size].reshape(blk.shape))
            offset += blk.size
        return out

    @property
    def params(self) -> list[Array]:
        """[W1, b1, W2, b2, ...] as views into ``theta`` (in-place writes take effect)."""
        out: list[Array] = []
        for blk in self.blocks:
            out.extend((blk[1:], blk[0]))
        return out

    def set_params(self, params: Sequence[Array]) -> None:
        """Copy arrays in the ``params`` order and shapes into the network."""
        current = self.params
        if len(params) != len(current):
            raise ValueError(f"expected {len(current)} arrays, got {len(params)}")
        for k, (dst, src) in enumerate(zip(current, params, strict=True)):
            src = np.asarray(src)  # rounded to the net's dtype when written in
            if src.shape != dst.shape:
                raise ValueError(f"params[{k}] has shape {src.shape}, expected {dst.shape}")
            dst[...] = src

    @property
    def n_params(self) -> int:
        return int(self.theta.size)

    def __repr__(self) -> str:
        skip = ", skip_connections=True" if self.skip_connections else ""
        return (
            f"Network({list(self.layer_sizes)}, activation={self.activation!r}, "
            f"output_activation={self.output_activation!r}, cost={self.cost!r}{skip})"
        )

    # -- buffers ------------------------------------------------------------
    def workspace(self, m: int) -> Workspace:
        """The (cached) buffers for batches of ``m`` rows."""
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) >= _MAX_CACHED_WORKSPACES:
                self._workspaces.clear()
            ws = self._workspaces[m] = Workspace(self, m)
        return ws

    def run(self, ws: Workspace) -> Array:
        """Forward pass on the inputs already in ``ws.x``; returns ``ws.out``."""
        return forward_layers(self.blocksT, ws.ins, ws.outs, self._f_hidden, self._f_output)

    def backprop(self, ws: Workspace) -> None:
        """Fill ``self.grad`` from the output delta in ``ws.deltas[-1]``, masks applied."""
        backward_layers(
            self.gblocks,
            ws.ins,
            ws.outs,
            ws.deltas,
            ws.deltasT,
            ws.tmps,
            self._grad_hidden,
            self.back_views,
        )
        if self.free is not None:
            self.grad *= self.free

    def output_delta(
        self,
        ws: Workspace,
        rows_sum_to_one: bool = False,
        factor: float = 1.0,
        margin: float | Array = 0.0,
    ) -> None:
        """dE/di at the outputs from ``ws.out`` and ``ws.diff = out - y``, times ``factor``
        (a trainer passes -learning_rate: backprop is linear in the output deltas, so the
        gradient then comes out as the step, without a pass over the parameters).
        ``margin`` > 0 (a float, or per member (K, 1, 1) in a population): the error dead
        zone, see ``engine.costs.dead_zone`` (``ws.diff`` is changed)."""
        scale = (1.0 / ws.m if self.cost in MEAN_COSTS else 1.0) * factor
        if isinstance(scale, np.ndarray):
            # a population's (K, 1, 1) factors are float64: rounded to the net's dtype as a
            # single net's Python float is when it meets its arrays (engine.dtypes)
            scale = scale.astype(ws.out.dtype, copy=False)
        if isinstance(margin, np.ndarray):
            margin = margin.astype(ws.out.dtype, copy=False)
        inside = None
        if not (isinstance(margin, float) and margin == 0.0):
            inside = dead_zone(ws.diff, margin, ws.tmps[-1])
        output_delta(
            self.cost,
            self.output_activation,
            ws.out,
            ws.y,
            ws.diff,
            ws.deltas[-1],
            ws.tmps[-1],
            scale,
            rows_sum_to_one,
        )
        if inside is not None:
            np.copyto(ws.deltas[-1], 0.0, where=inside)

    # -- public maths -------------------------------------------------------
    def _check_x(self, X: Array) -> Array:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X must be (n, {self.layer_sizes[0]}), got {X.shape}")
        return X

    def _check_xy(self, X: Array, Y: Array) -> tuple[Array, Array]:
        X = self._check_x(X)
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.ndim == 1 and self.layer_sizes[-1] == 1:
            Y = Y[:, None]
        if Y.shape != (X.shape[0], self.layer_sizes[-1]):
            raise ValueError(f"Y must be ({X.shape[0]}, {self.layer_sizes[-1]}), got {Y.shape}")
        return X, Y

    def forward(self, X: Array) -> Array:
        """Outputs (n, d_out) for inputs X: (n, d_in); a new array."""
        X = self._check_x(X)
        n = X.shape[0]
        result = np.empty((n, self.layer_sizes[-1]), dtype=self.dtype)
        with np.errstate(all="ignore"):
            for start in range(0, n, EVAL_CHUNK):
                stop = min(n, start + EVAL_CHUNK)
                ws = self.workspace(stop - start)
                ws.load_x(X[start:stop])
                result[start:stop] = self.run(ws).T
        return result

    def run_set(self, X: Array) -> Workspace:
        """A fresh workspace holding the forward pass of the whole set X."""
        X = self._check_x(X)
        ws = Workspace(self, X.shape[0])
        ws.load_x(X)
        with np.errstate(all="ignore"):
            self.run(ws)
        return ws

    def hidden(self, X: Array) -> list[Array]:
        """Hidden-layer outputs [h1, h2, ...], each (n, d_l), for inputs X."""
        return [o.T.copy() for o in self.run_set(X).outs[:-1]]

    def loss(self, X: Array, Y: Array) -> float:
        """The cost E over the set (sum for sse, mean over samples for mse/cross_entropy)."""
        X, Y = self._check_xy(X, Y)
        with np.errstate(all="ignore"):
            O = self.forward(X)
            total = cost_sum(self.cost, self.output_activation, O, Y, O - Y)
        return total / X.shape[0] if self.cost in MEAN_COSTS else total

    def gradient(self, X: Array, Y: Array, error_margin: float = 0.0) -> list[Array]:
        """dE/dparams over the whole set, arrays in ``params`` order and shapes.

        The cost's gradient only (no weight decay); masked weights get 0. ``error_margin``:
        the update's dead zone (outputs within it of their target add nothing).
        """
        X, Y = self._check_xy(X, Y)
        ws = Workspace(self, X.shape[0])
        ws.load_x(X)
        ws.y[...] = Y.T
        with np.errstate(all="ignore"):
            self.run(ws)
            np.subtract(ws.out, ws.y, out=ws.diff)
            self.output_delta(ws, margin=float(error_margin))
            self.backprop(ws)
        out: list[Array] = []
        for g in self.gblocks:
            out.extend((g[1:].copy(), g[0].copy()))
        return out

    # -- saving -------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """JSON-able description that rebuilds this network's shape."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "output_activation": self.output_activation,
            "cost": self.cost,
            "skip_connections": self.skip_connections,
        }

    def save(self, file: str | PathLike[str] | io.IOBase) -> None:
        """Write the weights (and masks, architecture) with ``np.savez``.

        Arrays: ``W1, b1, W2, b2, ...``, ``mask<l>`` for masked layers and
        ``architecture`` (a JSON string), all readable with allow_pickle=False.
        """
        arrays: dict[str, Array] = {"architecture": np.array(json.dumps(self.architecture()))}
        for i, array in enumerate(self.params):  # W1, b1, W2, b2, ... in params order
            arrays[f"{'W' if i % 2 == 0 else 'b'}{i // 2 + 1}"] = array
        for l, m in enumerate(self.masks):
            if m is not None:
                arrays[f"mask{l}"] = m
        np.savez(file, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, file: str | PathLike[str] | io.IOBase) -> Network:
        """Rebuild a network saved with ``save`` (np.load with allow_pickle=False)."""
        with np.load(file, allow_pickle=False) as data:
            try:
                arch = json.loads(str(data["architecture"]))
                if "kind" in arch:  # a net with shared weights: engine.tied, engine.recurrent
                    from .shared import from_architecture

                    shared = from_architecture(arch, data["W1"].dtype)
                    count = len(shared.params)
                    shared.set_params([data[f"{'Wb'[i % 2]}{i // 2 + 1}"] for i in range(count)])
                    return shared
                L = len(arch["layer_sizes"]) - 1
                masks = {l: data[f"mask{l}"] for l in range(L) if f"mask{l}" in data.files}
                net = cls(
                    arch["layer_sizes"],
                    activation=arch["activation"],
                    output_activation=arch["output_activation"],
                    cost=arch["cost"],
                    skip_connections=arch["skip_connections"],
                    rng=np.random.default_rng(0),
                    masks=masks or None,
                    dtype=data["W1"].dtype,
                )
                params: list[Array] = []
                for l in range(1, L + 1):
                    params.extend((data[f"W{l}"], data[f"b{l}"]))
            except KeyError as exc:
                raise ValueError(f"{file}: not a saved bplab network (missing {exc})") from None
        net.set_params(params)
        return net
