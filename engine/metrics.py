"""Per-epoch metrics of a set: loss, accuracy, max_error.

* ``loss``: the network's cost over the set (see ``engine.costs``).
* ``accuracy``: softmax outputs -> fraction of patterns whose largest output is
  the target's largest; sigmoid outputs with 0/1 targets -> fraction of patterns
  whose every output is on the right side of 0.5 (|o - e| < 0.5); otherwise None
  (identity outputs, or targets that are not 0/1).
* ``max_error``: max |o - e| over patterns and outputs; the paper's "solved" is
  ``max_error < stop_within``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .costs import MEAN_COSTS, cost_sum
from .network import EVAL_CHUNK, Network, Workspace

Array = np.ndarray


def accuracy_kind(output_activation: str, Y: Array) -> str | None:
    """ "argmax", "binary" or None (no accuracy) for these outputs and targets."""
    if output_activation == "softmax":
        return "argmax"
    if output_activation == "sigmoid" and bool(np.isin(Y, (0.0, 1.0)).all()):
        return "binary"
    return None


def from_sums(
    total: Any, correct: Any, max_err: Any, n: int, mean: bool, kind: str | None
) -> tuple[Any, Any, Any]:
    """(loss, accuracy, max_error) from the sums over the n rows of a set: numbers for one
    net, (K,) arrays for a population (the same arithmetic, so the same bits)."""
    loss = total / n if mean else total
    accuracy = None if kind is None else correct / n
    return loss, accuracy, max_err


class Scorer:
    """Evaluates a fixed set (X, Y) through preallocated buffers, chunk by chunk.

    A set of at most EVAL_CHUNK rows is copied into its buffers once; a full-batch
    trainer passes its own workspace (``ws``) so that the forward pass it runs for
    the next gradient also serves the metrics.
    """

    def __init__(
        self, net: Network, X: Array, Y: Array, kind: str | None, ws: Workspace | None = None
    ) -> None:
        self.net = net
        self.X, self.Y = X, Y
        self.n = X.shape[0]
        self.kind = kind
        self.mean = net.cost in MEAN_COSTS
        self.targets = Y.argmax(axis=1) if kind == "argmax" else None
        self.chunks: list[tuple[Workspace, int, int]] = []
        if ws is not None or self.n <= EVAL_CHUNK:
            if ws is None:
                ws = Workspace(net, self.n)
            ws.load_x(X)
            ws.y[...] = Y.T
            self.chunks.append((ws, 0, self.n))
            self.preloaded = True
        else:
            self.preloaded = False  # the chunks' buffers are made at the first score()

    def _chunks(self) -> list[tuple[Workspace, int, int]]:
        if not self.chunks:
            full = Workspace(self.net, EVAL_CHUNK)
            rest = self.n % EVAL_CHUNK
            last = Workspace(self.net, rest) if rest else full
            for start in range(0, self.n, EVAL_CHUNK):
                stop = min(self.n, start + EVAL_CHUNK)
                self.chunks.append((full if stop - start == EVAL_CHUNK else last, start, stop))
        return self.chunks

    def score(self, run: bool = True) -> tuple[float, float | None, float]:
        """(loss, accuracy, max_error) of the current weights.

        ``run=False``: the single preloaded chunk's forward pass is already done.
        Leaves ``ws.diff = out - y`` in the (last) chunk's workspace.
        """
        net = self.net
        if self.preloaded:
            ws = self.chunks[0][0]
            if run:
                net.run(ws)
            total, correct, max_err = self._score_ws(ws, self.targets)
        else:
            total, correct, max_err = 0.0, 0, 0.0
            for ws, start, stop in self._chunks():
                ws.load_x(self.X[start:stop])
                ws.y[...] = self.Y[start:stop].T
                net.run(ws)
                targets = None if self.targets is None else self.targets[start:stop]
                t, c, e = self._score_ws(ws, targets)
                total += t
                correct += c
                if not e <= max_err:  # also propagates nan
                    max_err = e
        return self.result(total, correct, max_err)

    def result(
        self, total: float, correct: int, max_err: float
    ) -> tuple[float, float | None, float]:
        """(loss, accuracy, max_error) from the sums over every row of the set."""
        return from_sums(total, correct, max_err, self.n, self.mean, self.kind)

    def running_sums(self) -> RunningSums:
        return RunningSums(self)

    def _score_ws(self, ws: Workspace, targets: Array | None) -> tuple[float, int, float]:
        net = self.net
        out, diff = ws.out, ws.diff
        np.subtract(out, ws.y, out=diff)
        total = cost_sum(net.cost, net.output_activation, out, ws.y, diff)
        absd = ws.tmps[-1]  # free between the forward pass and the next output delta
        np.abs(diff, out=absd)
        # per pattern: the largest |o - e| over its outputs
        rowmax = absd[0] if absd.shape[0] == 1 else np.maximum.reduce(absd, axis=0, out=ws.rowmax)
        max_err = float(rowmax.max())
        correct = 0
        if self.kind == "binary":
            correct = int(np.count_nonzero(np.less(rowmax, 0.5, out=ws.flags)))
        elif self.kind == "argmax":
            correct = int(np.count_nonzero(out.argmax(axis=0) == targets))
        return total, correct, max_err


class RunningSums:
    """The metrics of an epoch summed over its batches (``epoch_metrics="running"``): each
    batch is scored on the forward pass of its own update, so no extra pass is needed."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.total, self.correct, self.max_err = 0.0, 0, 0.0

    def add(self, ws: Workspace, rows: Array) -> None:
        """Score the batch of set rows ``rows`` whose forward pass is in ``ws``; leaves
        ``ws.diff = out - y`` for the update."""
        targets = self.scorer.targets
        t, c, e = self.scorer._score_ws(ws, None if targets is None else targets[rows])
        self.total += t
        self.correct += c
        if not e <= self.max_err:  # also propagates nan
            self.max_err = e

    def result(self) -> tuple[float, float | None, float]:
        return self.scorer.result(self.total, self.correct, self.max_err)
