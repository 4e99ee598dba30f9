"""Per-member metrics of a stack: ``engine.metrics``'s Scorer and RunningSums for K members.

Each member's loss is summed as the single net sums it (one BLAS ddot per member, see
``_dots``); maxima and counts are exact in any order. Why not ``engine.metrics.Scorer``
itself: it reduces one net's (units, m) arrays to Python numbers, K calls for a
population; these reduce every member's own axes of (K, units, m) arrays at once. The
arithmetic from the sums to the metrics is Scorer's own (``result``).
"""

from __future__ import annotations

import numpy as np

from .costs import _ONE_BELOW, _TINY, MEAN_COSTS
from .metrics import from_sums
from .network import EVAL_CHUNK, Network
from .stacked import Stack, StackedWorkspace, head

Array = np.ndarray


def _dots(a: Array, b: Array) -> Array:
    """Per member: np.dot of the flattened a[k] and b[k], the single net's ddot."""
    # vecdot calls BLAS ddot per row of contiguous (blasable) rows, as np.dot does, in a
    # third less time than a stacked matmul
    K = a.shape[0]
    return np.vecdot(a.reshape(K, -1), b.reshape(K, -1))


def cost_sums(cost: str, output_activation: str, o: Array, e: Array, diff: Array) -> Array:
    """``engine.costs.cost_sum`` per member: (K,) sums over samples and outputs."""
    # float64 out, as the single net's sums become Python floats before any arithmetic
    # (the 1/n of a mean cost): the float32 sums, exactly, then the same float64 steps
    if cost != "cross_entropy":
        return 0.5 * _dots(diff, diff).astype(np.float64)
    if output_activation == "softmax":
        return -_dots(np.log(np.maximum(o, _TINY[o.dtype])), e).astype(np.float64)
    if output_activation == "sigmoid":
        o = np.clip(o, _TINY[o.dtype], _ONE_BELOW[o.dtype])
    with np.errstate(invalid="ignore", divide="ignore"):
        return -(_dots(np.log(o), e) + _dots(np.log1p(-o), 1.0 - e)).astype(np.float64)


class StackedScorer:
    """``engine.metrics.Scorer`` for a stack: per-member (loss, accuracy, max_error) arrays."""

    def __init__(
        self,
        template: Network,
        K: int,
        X: Array,
        Y: Array,
        kind: str | None,
        ws: StackedWorkspace | None = None,
    ) -> None:
        self.X, self.Y, self.n, self.kind = X, Y, X.shape[0], kind
        self.template, self.K = template, K
        self.mean = template.cost in MEAN_COSTS
        self.cost, self.act = template.cost, template.output_activation
        self.targets = Y.argmax(axis=1) if kind == "argmax" else None
        self.chunks: list[tuple[StackedWorkspace, int, int]] = []
        shared = not template.skip_connections
        if ws is not None or self.n <= EVAL_CHUNK:
            if ws is None:
                ws = StackedWorkspace(template, K, self.n, shared_input=shared)
            ws.load(X, Y)
            self.chunks.append((ws, 0, self.n))
            self.preloaded = True
        else:
            # the chunks' buffers (K members x EVAL_CHUNK rows) are made at the first score()
            self.preloaded = False

    def _chunks(self) -> list[tuple[StackedWorkspace, int, int]]:
        if not self.chunks:
            shared = not self.template.skip_connections
            full = StackedWorkspace(self.template, self.K, EVAL_CHUNK, shared_input=shared)
            rest = self.n % EVAL_CHUNK
            last = (
                StackedWorkspace(self.template, self.K, rest, shared_input=shared) if rest else full
            )
            for start in range(0, self.n, EVAL_CHUNK):
                stop = min(self.n, start + EVAL_CHUNK)
                self.chunks.append((full if stop - start == EVAL_CHUNK else last, start, stop))
        return self.chunks

    def head(self, k: int) -> StackedScorer:
        out = StackedScorer.__new__(StackedScorer)
        out.__dict__.update(self.__dict__)
        out.K = k
        out.chunks = [(head(ws, k), a, b) for ws, a, b in self.chunks]
        return out

    def score(self, stack: Stack, run: bool = True) -> tuple[Array, Array | None, Array]:
        if self.preloaded:
            ws = self.chunks[0][0]
            if run:
                stack.run(ws)
            total, correct, max_err = self._score_ws(ws, self.targets)
        else:
            parts = []
            for ws, start, stop in self._chunks():
                ws.load_x(self.X[start:stop])
                ws.y[...] = self.Y[start:stop].T
                stack.run(ws)
                targets = None if self.targets is None else self.targets[start:stop]
                parts.append(self._score_ws(ws, targets))
            total, correct, max_err = parts[0]
            for t, c, e in parts[1:]:  # in chunk order, as Scorer adds them
                total = total + t
                correct = correct + c
                max_err = np.where(e <= max_err, max_err, e)  # as Scorer: nan propagates
        return self.result(total, correct, max_err)

    def result(
        self, total: Array, correct: Array, max_err: Array
    ) -> tuple[Array, Array | None, Array]:
        """``Scorer.result`` per member: (loss, accuracy, max_error) from the set's sums;
        float64 whatever the dtype (the single net's are Python floats)."""
        max_err = max_err.astype(np.float64, copy=False)
        return from_sums(total, correct, max_err, self.n, self.mean, self.kind)

    def running_sums(self) -> StackedRunningSums:
        return StackedRunningSums(self)

    def _score_ws(self, ws: StackedWorkspace, targets: Array | None) -> tuple[Array, Array, Array]:
        out, diff = ws.out, ws.diff
        np.subtract(out, ws.y, out=diff)
        total = cost_sums(self.cost, self.act, out, ws.y, diff)
        absd = ws.tmps[-1]
        np.abs(diff, out=absd)
        rowmax = (
            absd[:, 0] if absd.shape[1] == 1 else np.maximum.reduce(absd, axis=1, out=ws.rowmax)
        )
        max_err = row_max(rowmax)
        if self.kind == "binary":
            # counts as a product with ones: one BLAS call instead of K short reductions
            np.less(rowmax, 0.5, out=ws.flags)
            return total, ws.flags @ ws.ones, max_err
        if self.kind == "argmax":
            return total, np.count_nonzero(out.argmax(axis=1) == targets, axis=1), max_err
        return total, np.zeros(rowmax.shape[0]), max_err


def row_max(a: Array) -> Array:
    """(K, m) -> (K,) row maxima, NaN propagating. Max is exact in any order, so take the
    fastest: a reduction along a short last axis costs ~10 us per call for K = 256, a
    reduction down the columns of the transposed copy ~2 us, reduceat in between."""
    K, m = a.shape
    if m == 1:
        return a[:, 0].copy()
    if m <= 16:
        return np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)
    return np.maximum.reduceat(np.ascontiguousarray(a).reshape(-1), np.arange(0, K * m, m))


class StackedRunningSums:
    """``engine.metrics.RunningSums`` for a stack: per-member sums over an epoch's batches,
    added in the same order as train() adds them (so the same bits)."""

    def __init__(self, scorer: StackedScorer) -> None:
        self.scorer = scorer
        self.total: Array | float = 0.0
        self.correct: Array | int = 0
        self.max_err: Array | float = 0.0

    def add(self, ws: StackedWorkspace, rows: Array) -> None:
        """``rows``: (K, m) set rows of each member's batch, whose forward pass is in ws;
        leaves ``ws.diff = out - y`` for the update."""
        targets = self.scorer.targets
        t, c, e = self.scorer._score_ws(ws, None if targets is None else targets[rows])
        self.total = self.total + t
        self.correct = self.correct + c
        self.max_err = np.where(e <= self.max_err, self.max_err, e)  # nan propagates

    def result(self) -> tuple[Array, Array | None, Array]:
        return self.scorer.result(self.total, self.correct, self.max_err)  # type: ignore[arg-type]
