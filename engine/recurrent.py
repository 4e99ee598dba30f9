"""A recurrent net unfolded in time, trained by backpropagation through time (BPTT).

Rumelhart, Hinton & Williams (1986) show that a net run for T steps is a layered net of T
layers that share their weights, so the delta rule applies unchanged once a shared
weight's gradient is summed over the steps where it is used. Here, at every step t:

    h_t = f(b + W_x x_t + W_h h_{t-1}),  h_0 = 0 before the first step,
    y_t = g(c + W_y h_t).

A sequence is one row of the dataset: X holds x_1 .. x_T one after another (T * d_in
columns), Y the targets y_1 .. y_T (T * d_out columns), so the trainers, metrics and
checkpoints of ``engine.training`` work on it unchanged: the loss sums over every step,
and a pattern is right when every output at every step is.

Layout: the parameters are those of a layered net [d_in + H, H, d_out] whose hidden layer
receives [x_t; h_{t-1}]: ``params`` = [W (d_in + H, H) = [W_x; W_h], b, W_y, c].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import Workspace
from .network import Network

Array = np.ndarray


class RecurrentWorkspace(Workspace):
    """Buffers of a RecurrentNetwork for ``m`` sequences.

    ``z[t]`` = [1; x_t; h_{t-1}] (1 + d_in + H, m), the hidden layer's input at step t, and
    ``hs[t]`` = [1; h_t] (1 + H, m), the output layer's; ``out``, ``y``, ``diff`` are
    (T * d_out, m), step after step, as the dataset's rows are.
    """

    def __init__(self, net: RecurrentNetwork, m: int) -> None:  # type: ignore[override]
        T, d_in, H, d_out = net.steps, net.step_inputs, net.units, net.step_outputs
        self.m = m
        self.rows = None
        dtype = net.dtype  # every buffer in the net's dtype
        self.z = np.zeros((T, 1 + d_in + H, m), dtype)
        self.z[:, 0] = 1.0
        self.hs = np.empty((T, 1 + H, m), dtype)
        self.hs[:, 0] = 1.0
        self.out = np.empty((T * d_out, m), dtype)
        self.y = np.empty_like(self.out)
        self.diff = np.empty_like(self.out)
        self.deltas = [np.empty_like(self.out)]
        self.deltasT = [d.T for d in self.deltas]
        self.tmps = [np.empty_like(self.out)]
        self.outs = [self.out]
        self.dh = np.empty((H, m), dtype)  # dE/dh_t, then dE/d(net input) at step t
        self.dh_tmp = np.empty((H, m), dtype)
        self.g0 = np.empty((1 + d_in + H, H), dtype)
        self.g1 = np.empty((1 + H, d_out), dtype)
        self.rowmax = np.empty(m, dtype)
        self.flags = np.empty(m, dtype=bool)

    def load_x(self, rows: Array) -> None:
        """Copy (m, T * d_in) sequences into the steps' input blocks."""
        d_in = self.z.shape[1] - 1 - self.dh.shape[0]
        for t in range(self.z.shape[0]):
            np.copyto(self.z[t, 1 : 1 + d_in], rows[:, t * d_in : (t + 1) * d_in].T)


class RecurrentNetwork(Network):
    """``step_inputs`` -> ``units`` recurrent hidden units -> ``step_outputs``, run for
    ``steps`` steps. Softmax outputs are not offered: each step would need its own.
    ``dtype``: as ``Network``'s."""

    workspace_class = RecurrentWorkspace
    stackable = False  # engine.stacked has no recurrent layer: populations of one only

    def __init__(
        self,
        step_inputs: int,
        units: int,
        step_outputs: int,
        steps: int,
        *,
        activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        cost: str = "sse",
        init: float | str = 0.3,
        rng: np.random.Generator,
        dtype: str | np.dtype = "float64",
    ) -> None:
        if steps < 1 or min(step_inputs, units, step_outputs) < 1:
            raise ValueError("a recurrent net needs steps, inputs, units and outputs >= 1")
        if output_activation == "softmax":
            raise ValueError("a recurrent net's outputs cannot be softmax (one per step)")
        super().__init__(
            [step_inputs + units, units, step_outputs],
            activation=activation,
            output_activation=output_activation,
            cost=cost,
            init=init,
            rng=rng,
            dtype=dtype,
        )
        self.steps, self.units = steps, units
        self.step_inputs, self.step_outputs = step_inputs, step_outputs
        self.layer_sizes = (steps * step_inputs, units, steps * step_outputs)

    def __repr__(self) -> str:
        return (
            f"RecurrentNetwork({self.step_inputs}, {self.units}, {self.step_outputs}, "
            f"steps={self.steps}, activation={self.activation!r}, "
            f"output_activation={self.output_activation!r}, cost={self.cost!r})"
        )

    def run(self, ws: RecurrentWorkspace) -> Array:  # type: ignore[override]
        """The unfolded forward pass: step after step, h_t into the next step's input."""
        W0T, W1T = self.blocksT
        d_in, d_out = self.step_inputs, self.step_outputs
        f, g = self._f_hidden, self._f_output
        for t in range(self.steps):
            h = ws.hs[t, 1:]
            np.dot(W0T, ws.z[t], out=h)
            f(h, h)
            if t + 1 < self.steps:
                np.copyto(ws.z[t + 1, 1 + d_in :], h)
            o = ws.out[t * d_out : (t + 1) * d_out]
            np.dot(W1T, ws.hs[t], out=o)
            g(o, o)
        return ws.out

    def backprop(self, ws: RecurrentWorkspace) -> None:  # type: ignore[override]
        """BPTT from the output deltas of every step in ``ws.deltas[-1]``: back from the last
        step, dE/dh_t = W_y delta_t + W_h delta^h_{t+1}; each shared block's gradient is the
        sum over the steps of [inputs] delta^T."""
        g0, g1 = self.gblocks
        g0.fill(0.0)
        g1.fill(0.0)
        d_in, d_out = self.step_inputs, self.step_outputs
        W_y = self.blocks[1][1:]  # (H, d_out)
        W_h = self.blocks[0][1 + d_in :]  # (H, H): rows are h_{t-1}'s outgoing weights
        D = ws.deltas[-1]
        dh = ws.dh
        for t in range(self.steps - 1, -1, -1):
            d_t = D[t * d_out : (t + 1) * d_out]
            np.dot(ws.hs[t], d_t.T, out=ws.g1)
            g1 += ws.g1
            if t == self.steps - 1:
                np.dot(W_y, d_t, out=dh)
            else:  # dh holds delta^h_{t+1}
                np.dot(W_h, dh, out=ws.dh_tmp)
                np.dot(W_y, d_t, out=dh)
                dh += ws.dh_tmp
            self._grad_hidden(ws.hs[t, 1:], dh, ws.dh_tmp)
            np.dot(ws.z[t], dh.T, out=ws.g0)
            g0 += ws.g0

    def hidden(self, X: Array) -> list[Array]:
        """[h_1 .. h_T side by side (n, T * H)] for sequences X."""
        ws = self.run_set(X)
        return [np.concatenate([ws.hs[t, 1:].T for t in range(self.steps)], axis=1)]

    def architecture(self) -> dict[str, Any]:
        return {
            "kind": "recurrent",
            "steps": self.steps,
            "layer_sizes": [self.step_inputs, self.units, self.step_outputs],
            "activation": self.activation,
            "output_activation": self.output_activation,
            "cost": self.cost,
        }
