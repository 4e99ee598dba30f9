"""K networks of one shape as stacked arrays: the numerical core of population training.

Every member's parameters are one row of ``theta: (K, P)``, laid out exactly as a single
``Network.theta``; the per-layer blocks are (K, 1 + fan_in, d) views into it. Each matrix
product is ``np.matmul`` over the leading K axis, which makes the same BLAS call per member
that ``np.dot`` makes for one net, and every other operation is elementwise or reduces over
one member's own axes in the single net's order. One exception, for speed: when all members
see the same input (full batch, no skip connections) layer 0's forward and gradient products
are one GEMM over all members instead of K small ones, but only for sizes where a check at
first use (``_gemm_ok``) found that GEMM to give each member's own ``np.dot`` bits (OpenBLAS
picks its kernel, and so its order of accumulation, by the sizes of a call). So each
member's numbers are bit for bit those of ``engine.train`` on that member alone
(tests/engine/test_population*.py hold this).

Shapes: activations (K, units, m) (unit-major, as in ``engine.network.Workspace``);
per-member scalars (learning rate, momentum) are (K, 1) columns broadcast over the row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .activations import DERIVATIVES, FORWARD
from .costs import _ONE_BELOW, _TINY, MEAN_COSTS, output_delta
from .network import EVAL_CHUNK, Network, forward_layers
from .optimizers import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

Array = np.ndarray


def same_shape(a: Network, b: Network) -> bool:
    """True when two networks can train in one population (layers, units, cost, masks)."""
    if (a.architecture() != b.architecture()) or len(a.masks) != len(b.masks):
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
        self._f_hidden = FORWARD[template.activation]
        self._f_output = FORWARD[template.output_activation]
        self._grad_hidden = DERIVATIVES[template.activation]

    def run(self, ws: StackedWorkspace) -> Array:
        """Forward pass of every member on the inputs in ``ws.x``; returns ``ws.out``."""
        if self.template.skip_connections:
            return forward_layers(
                self.blocksT, ws.ins, ws.outs, self._f_hidden, self._f_output, product=np.matmul
            )
        # Without skip connections a hidden layer's outputs are rows 1: of the next layer's
        # input buffer, a strided (K, d, m) view on which every ufunc is several times slower
        # than on the whole contiguous buffer. So apply f to the whole buffer and put the row
        # of ones back: elementwise, the hidden values are the same bits.
        last = len(self.blocksT) - 1
        f = self._f_hidden
        for l in range(last):
            nxt = ws.ins[l + 1]
            if l == 0 and self._gemm_first(ws, "forward"):
                # one GEMM for all members (the input is shared), f on its contiguous
                # result, then into the strided hidden rows: the row of ones is never touched
                wf = self._forward_buffer()
                np.copyto(_units(wf), _units(self.blocks[0]).T)
                K, d, m = ws.first.shape
                r = ws.first.reshape(K * d, m)
                np.dot(wf.reshape(wf.shape[0], -1).T, ws.ins[0], out=r)
                f(r, r)
                np.copyto(nxt.reshape(K, -1)[:, m:], r.reshape(K, d * m))
                continue
            np.matmul(self.blocksT[l], ws.ins[l], out=ws.outs[l])
            f(nxt, nxt)
            nxt[:, 0] = 1.0
        o = ws.outs[last]
        np.matmul(self.blocksT[last], ws.ins[last], out=o)
        return self._f_output(o, o)

    def backprop(self, ws: StackedWorkspace) -> None:
        """Fill ``grad`` (K, P) from the output deltas in ``ws.deltas[-1]``, masks applied.

        ``engine.network.backward_layers`` with one shortcut: a product whose inner
        dimension is 1 (one output unit, or one pattern per update) is an outer product,
        each entry a single a*b, so a broadcast multiply gives the same values (at most the
        sign of a zero differs) for a fraction of K tiny BLAS calls.
        """
        grad_hidden, ins, deltas, tmps = self._grad_hidden, ws.ins, ws.deltas, ws.tmps
        for l in range(len(self.gblocks) - 1, -1, -1):
            if l == 0 and self._gemm_first(ws, "grad"):
                self._grad_first(ws)
                break
            a, dl, gb = ins[l], deltas[l], self.gblocks[l]
            if dl.shape[1] == 1 and _einsum_ok(self.K, a.shape[1], ws.m, _sample_major(a)):
                np.einsum("kip,kp->ki", a, dl[:, 0], out=gb[..., 0])
            else:
                _product(a, ws.deltasT[l], gb)
            if l == 0:
                break
            j = l - 1
            first, further = self.back_views[j]
            dj = deltas[j]
            _product(first, deltas[l], dj)
            tmp = tmps[j]
            for k, rows in further:
                _product(rows, deltas[k], tmp)
                dj += tmp
            # layer 0's outputs after the shared GEMM are also in the contiguous ws.first,
            # where f' costs a third of its time on the strided rows of the next input
            outs = ws.first if j == 0 and self._gemm_first(ws, "forward") else ws.outs[j]
            grad_hidden(outs, dj, tmp)
        if self.free is not None:
            self.grad *= self.free

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
                which, self.K, x.shape[0], self.blocks[0].shape[2], ws.m, _sample_major(x)
            )
        return ok

    def _forward_buffer(self) -> Array:
        """Layer 0's weights of all members as one (rows, K, d) matrix for the GEMM."""
        if self._wf is None:
            rows, d = self.blocks[0].shape[1:]
            self._wf = np.empty((rows, self.K, d))
        return self._wf

    def _grad_first(self, ws: StackedWorkspace) -> None:
        """dE/d[b; W] of layer 0 for all members from one GEMM on the shared input."""
        x, d0 = ws.ins[0], ws.deltas[0]
        rows, d = self.blocks[0].shape[1:]
        g = self._grads.get(ws.m)
        if g is None:
            g = self._grads[ws.m] = np.empty((rows, self.K * d))
        np.dot(x, d0.reshape(-1, ws.m).T, out=g)
        np.copyto(_units(self.gblocks[0]), _units(g.reshape(rows, self.K, d)).T)

    def output_delta(
        self, ws: StackedWorkspace, rows_sum_to_one: bool, factor: float | Array = 1.0
    ) -> None:
        """``Network.output_delta``; ``factor``: 1.0, or per member (K, 1, 1)."""
        net = self.template
        scale = (1.0 / ws.m if net.cost in MEAN_COSTS else 1.0) * factor
        output_delta(
            net.cost,
            net.output_activation,
            ws.out,
            ws.y,
            ws.diff,
            ws.deltas[-1],
            ws.tmps[-1],
            scale,
            rows_sum_to_one,
        )


# Faster formulations of per-member products, each used only where it is verified to
# give the same bits as the single net's np.dot. Which BLAS kernel (and so which order of
# accumulation, with or without FMA) OpenBLAS runs depends on the sizes and transposition
# of the call, so "same kernel" cannot be read off the shapes: a GEMM over all members has
# other sizes than a member's own. The check runs both on random numbers at the first use
# of a size and remembers the verdict: a different order of accumulation rounds
# differently on random data almost surely, a product computed the same way agrees
# everywhere (the numbers only enter the same operations in the same order).
_VERDICTS: dict[tuple[object, ...], bool] = {}


def _same_bits(a: Array, b: Array) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


def _trial_inputs(
    rng: np.random.Generator, shape: tuple[int, ...], sample_major: bool = False
) -> list[Array]:
    """Normal numbers, and numbers spread over many binades (where order matters most).

    ``sample_major``: laid out as the input blocks are (``StackedWorkspace.rows``): the
    last two axes are the transposed view of a C-contiguous array, since BLAS and einsum
    pick their code by the layout too."""
    if sample_major:
        swapped = (*shape[:-2], shape[-1], shape[-2])
        return [np.swapaxes(a, -1, -2) for a in _trial_inputs(rng, swapped)]
    return [
        rng.standard_normal(shape),
        rng.standard_normal(shape) * 2.0 ** rng.integers(-40, 40, shape),
    ]


# Results compared per check at the least. One differing order of accumulation shows in
# about half the results on random data, so a check of a few numbers (one member of a
# 2-2-1 net: 3) can pass by chance; repeating it on fresh draws up to this many makes that
# chance negligible (0.5 ** 256).
TRIAL_RESULTS = 256


def _rounds(results: int, draw: Callable[[], Iterable[Any]]) -> Iterator[Any]:
    """The trial inputs of ``draw()``, drawn again until ``TRIAL_RESULTS`` results (each
    draw giving ``results``) are compared."""
    for _ in range(max(1, -(-TRIAL_RESULTS // max(1, results)))):
        yield from draw()


def _sample_major(a: Array) -> bool:
    """True for an input block stored one sample per row (see ``_trial_inputs``)."""
    return a.strides[-2] < a.strides[-1]


def _gemm_ok(which: str, K: int, rows: int, d: int, m: int, sample_major: bool = False) -> bool:
    """Layer 0 with a shared input (rows = 1 + d_in, d units, m patterns) as one GEMM.

    "forward": ``np.dot(Wf.T, x)`` with Wf (rows, K*d) against each member's
    ``np.dot(block.T, x)``; "grad": ``np.dot(x, deltas.reshape(K*d, m).T)`` against each
    member's ``np.dot(x, delta.T)``. A member's product with a dimension 1 is a gemv or a
    dot, never the GEMM's kernel, so those sizes are not even tried.
    """
    if min(rows, d, m) < 2:
        return False
    key = (which, K, rows, d, m, sample_major)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        rng = np.random.default_rng(12345)
        verdict = True
        for w, x, dl in _rounds(
            K * d * m,
            lambda: zip(
                _trial_inputs(rng, (K, rows, d)),
                _trial_inputs(rng, (rows, m), sample_major),
                _trial_inputs(rng, (K, d, m)),
                strict=True,
            ),
        ):
            if which == "forward":
                ref = np.stack([np.dot(w[k].T, x) for k in range(K)])
                wf = np.ascontiguousarray(w.transpose(1, 0, 2))
                fast = np.dot(wf.reshape(rows, -1).T, x).reshape(K, d, m)
            else:
                ref = np.stack([np.dot(x, dl[k].T) for k in range(K)])
                g = np.dot(x, dl.reshape(-1, m).T)
                fast = np.ascontiguousarray(g.reshape(rows, K, d).transpose(1, 0, 2))
            verdict = verdict and _same_bits(ref, fast)
        _VERDICTS[key] = verdict
    return verdict


def _einsum_ok(K: int, rows: int, m: int, sample_major: bool = False) -> bool:
    """A gradient block for one output unit, g[k, i] = sum_p a[k, i, p] delta[k, p]: the
    single net's np.dot is a gemv; ``np.einsum`` does all members in one call (half the
    time of K gemv calls) and, for the sizes where the check passes, in the same order."""
    if m < 2:
        return False
    key = ("einsum", K, rows, m, sample_major)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        rng = np.random.default_rng(12345)
        verdict = True
        P = rows + 3  # the output is a strided block of a (K, P) array, as in a Stack
        for a, dl in _rounds(
            K * rows,
            lambda: zip(
                _trial_inputs(rng, (K, rows, m), sample_major),
                _trial_inputs(rng, (K, 1, m)),
                strict=True,
            ),
        ):
            ref = np.stack([np.dot(a[k], dl[k].T) for k in range(K)])
            fast = np.zeros((K, P))
            np.einsum("kip,kp->ki", a, dl[:, 0], out=fast[:, 1 : 1 + rows])
            verdict = verdict and _same_bits(ref[..., 0], fast[:, 1 : 1 + rows].copy())
        _VERDICTS[key] = verdict
    return verdict


def _units(a: Array) -> Array:
    """(..., d) float64 with a contiguous last axis as (...) opaque d*8-byte items: a
    transposing copy then moves whole rows of d numbers per step (bits untouched), several
    times faster than numpy's copy with an inner loop of d elements."""
    return a.view(np.dtype((np.void, 8 * a.shape[-1])))[..., 0]


def _product(a: Array, b: Array, out: Array) -> None:
    if a.shape[-1] != 1:
        np.matmul(a, b, out=out)
    elif a.ndim == 3 and a.shape[-2] <= 4:
        # an outer product (K, r, 1) x (K, 1, c) with few rows: one multiply per row,
        # each (K, c) by a (K, 1) column, takes half the work of one broadcast over both
        for i in range(a.shape[-2]):
            np.multiply(b[:, 0], a[:, i], out=out[:, i])
    else:
        np.multiply(a, b, out=out)


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
        if net.skip_connections:
            buf = np.empty((K, 1 + sum(sizes[:-1]), m))
            buf[:, 0] = 1.0
            for l in range(L):
                self.ins.append(buf[:, : 1 + net.fan_ins[l]])
            for l in range(L - 1):
                start = 1 + sum(sizes[: l + 1])
                self.outs.append(buf[:, start : start + sizes[l + 1]])
        else:
            self.rows = np.empty((m, 1 + sizes[0]) if shared_input else (K, m, 1 + sizes[0]))
            self.rows[..., 0] = 1.0
            self.ins.append(np.swapaxes(self.rows, -1, -2))
            for l in range(1, L):
                buf = np.empty((K, 1 + sizes[l], m))
                buf[:, 0] = 1.0
                self.ins.append(buf)
            for l in range(L - 1):
                self.outs.append(self.ins[l + 1][:, 1:])
        self.out = np.empty((K, sizes[-1], m))
        self.outs.append(self.out)
        self.x = self.ins[0][..., 1 : 1 + sizes[0], :]
        # layer 0's outputs as the shared-input GEMM leaves them (see Stack.run)
        self.first: Array = np.empty((K, sizes[1], m) if shared_input else (0, 0, 0))
        self.y = np.empty((K, sizes[-1], m))
        self.diff = np.empty((K, sizes[-1], m))
        self.deltas = [np.empty((K, d, m)) for d in sizes[1:]]
        self.deltasT = [d.transpose(0, 2, 1) for d in self.deltas]
        self.tmps = [np.empty((K, d, m)) for d in sizes[1:]]
        self.rowmax = np.empty((K, m))
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


def _dots(a: Array, b: Array) -> Array:
    """Per member: np.dot of the flattened a[k] and b[k], the single net's ddot."""
    # vecdot calls BLAS ddot per row of contiguous (blasable) rows, as np.dot does, in a
    # third less time than a stacked matmul
    K = a.shape[0]
    return np.vecdot(a.reshape(K, -1), b.reshape(K, -1))


def cost_sums(cost: str, output_activation: str, o: Array, e: Array, diff: Array) -> Array:
    """``engine.costs.cost_sum`` per member: (K,) sums over samples and outputs."""
    if cost != "cross_entropy":
        return 0.5 * _dots(diff, diff)
    if output_activation == "softmax":
        return -_dots(np.log(np.maximum(o, _TINY)), e)
    if output_activation == "sigmoid":
        o = np.clip(o, _TINY, _ONE_BELOW)
    with np.errstate(invalid="ignore", divide="ignore"):
        return -(_dots(np.log(o), e) + _dots(np.log1p(-o), 1.0 - e))


# Up to this many parameters per member the optimizer spreads (K, 1) columns to (K, P).
WIDE_PARAMETERS = 64


class StackedOptimizer:
    """The optimizers of ``engine.optimizers`` for K members; ``buffers`` hold (K, ...) rows."""

    def __init__(self, name: str, buffers: dict[str, Array]) -> None:
        self.name = name
        self.buffers = buffers
        self._wide_of: Array | None = None
        self._wide_col = np.empty(0)
        if name == "adam":
            self.tmp = np.empty_like(buffers["m"])

    @classmethod
    def zeros(cls, name: str, K: int, P: int) -> StackedOptimizer:
        if name == "adam":
            return cls(
                name, {"m": np.zeros((K, P)), "v": np.zeros((K, P)), "t": np.zeros(K, np.int64)}
            )
        return cls(name, {"velocity": np.zeros((K, P))})

    def take(self, rows: Array) -> StackedOptimizer:
        """The optimizer of the members in ``rows`` (copies)."""
        return StackedOptimizer(self.name, {k: v[rows] for k, v in self.buffers.items()})

    def member_buffers(self, row: int) -> dict[str, Array]:
        """Copies of one member's buffers, shaped as the single-net optimizer's."""
        return {k: np.array(v[row]) for k, v in self.buffers.items()}

    def load_member(self, row: int, buffers: dict[str, Array]) -> None:
        for key, value in self.buffers.items():
            if key not in buffers or np.shape(buffers[key]) != value.shape[1:]:
                raise ValueError(
                    f"{self.name} state lacks buffer {key!r} of shape {value.shape[1:]}"
                )
            value[row] = buffers[key]

    def _wide(self, col: Array, P: int) -> Array:
        """A (K, 1) column as a (K, P) array for small P: a multiply broadcasting a column
        runs an inner loop of P numbers per member, ~3x the time of a plain one at P = 9.
        Made again only when the caller passes a new column (schedules, compaction)."""
        if P > WIDE_PARAMETERS:
            return col
        if self._wide_of is not col:
            self._wide_of, self._wide_col = col, np.repeat(col, P, axis=1)
        return self._wide_col

    @property
    def folds_learning_rate(self) -> bool:
        """As ``engine.optimizers``: sgd and nesterov take -eps dE/dw as ``grad``."""
        return self.name != "adam"

    def step(self, theta: Array, grad: Array, lr: Array, mom: Array) -> None:
        """One update of every row; ``lr``, ``mom``: (K, 1). Clobbers ``grad``."""
        if self.name == "adam":
            self._adam(theta, grad, lr)
            return
        v = self.buffers["velocity"]
        mom = self._wide(mom, v.shape[1])
        v *= mom
        v += grad
        if self.name == "sgd":
            theta += v
        else:  # nesterov: the look-ahead form of engine.optimizers.Nesterov
            theta += grad
            np.multiply(v, mom, out=grad)
            theta += grad

    def _adam(self, theta: Array, grad: Array, lr: Array) -> None:
        m, v, t, tmp = self.buffers["m"], self.buffers["v"], self.buffers["t"], self.tmp
        t += 1
        m *= ADAM_BETA1
        np.multiply(grad, 1.0 - ADAM_BETA1, out=tmp)
        m += tmp
        v *= ADAM_BETA2
        grad *= grad
        grad *= 1.0 - ADAM_BETA2
        v += grad
        # Python's float ** int, as the single-net Adam computes it (np.power may use a
        # SIMD pow that differs in the last bit); members mostly share t, so few pows.
        corr = {x: (1.0 - ADAM_BETA1**x, 1.0 - ADAM_BETA2**x) for x in set(t.tolist())}
        bc1 = np.array([corr[x][0] for x in t.tolist()])
        bc2 = np.array([corr[x][1] for x in t.tolist()])
        np.sqrt(v, out=tmp)
        tmp *= (1.0 / np.sqrt(bc2))[:, None]
        tmp += ADAM_EPS
        np.divide(m, tmp, out=tmp)
        tmp *= lr / bc1[:, None]
        theta -= tmp


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
        """``Scorer.result`` per member: (loss, accuracy, max_error) from the set's sums."""
        loss = total / self.n if self.mean else total
        accuracy = None if self.kind is None else correct / self.n
        return loss, accuracy, max_err

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


def stack_thetas(nets: Sequence[Network]) -> Array:
    """(K, P) copy of the members' flat parameter vectors."""
    return np.stack([net.theta for net in nets])


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
