"""Checks that a faster formulation of a population's products gives each member's own bits.

``engine.stacked`` runs some per-member products in another form than the single net's
``np.dot`` (one GEMM over all members on a shared input, one ``np.einsum`` for all
one-unit gradients), but only for the sizes where these checks, run at the first use of a
size, found that form to give every member exactly what ``np.dot`` gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

Array = np.ndarray


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
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    as_int = np.dtype(f"i{a.itemsize}")
    return bool(np.array_equal(a.view(as_int), b.view(as_int)))


def _trial_inputs(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    sample_major: bool = False,
    dtype: Any = np.float64,
) -> list[Array]:
    """Normal numbers, and numbers spread over many binades (where order matters most),
    of ``dtype``: float32 products run other BLAS kernels (sgemm) than float64 ones.

    ``sample_major``: laid out as the input blocks are (``StackedWorkspace.rows``): the
    last two axes are the transposed view of a C-contiguous array, since BLAS and einsum
    pick their code by the layout too."""
    if sample_major:
        swapped = (*shape[:-2], shape[-1], shape[-2])
        return [np.swapaxes(a, -1, -2) for a in _trial_inputs(rng, swapped, False, dtype)]
    return [
        rng.standard_normal(shape).astype(dtype),
        (rng.standard_normal(shape) * 2.0 ** rng.integers(-40, 40, shape)).astype(dtype),
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


def _gemm_ok(
    which: str,
    K: int,
    rows: int,
    d: int,
    m: int,
    sample_major: bool = False,
    dtype: Any = np.float64,
) -> bool:
    """Layer 0 with a shared input (rows = 1 + d_in, d units, m patterns) as one GEMM.

    "forward": ``np.dot(Wf.T, x)`` with Wf (rows, K*d) against each member's
    ``np.dot(block.T, x)``; "grad": ``np.dot(x, deltas.reshape(K*d, m).T)`` against each
    member's ``np.dot(x, delta.T)``. A member's product with a dimension 1 is a gemv or a
    dot, never the GEMM's kernel, so those sizes are not even tried.
    """
    if min(rows, d, m) < 2:
        return False
    dtype = np.dtype(dtype)
    key = (which, K, rows, d, m, sample_major, dtype.name)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        rng = np.random.default_rng(12345)
        verdict = True
        for w, x, dl in _rounds(
            K * d * m,
            lambda: zip(
                _trial_inputs(rng, (K, rows, d), False, dtype),
                _trial_inputs(rng, (rows, m), sample_major, dtype),
                _trial_inputs(rng, (K, d, m), False, dtype),
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


def _einsum_ok(
    K: int, rows: int, m: int, sample_major: bool = False, dtype: Any = np.float64
) -> bool:
    """A gradient block for one output unit, g[k, i] = sum_p a[k, i, p] delta[k, p]: the
    single net's np.dot is a gemv; ``np.einsum`` does all members in one call (half the
    time of K gemv calls) and, for the sizes where the check passes, in the same order."""
    if m < 2:
        return False
    dtype = np.dtype(dtype)
    key = ("einsum", K, rows, m, sample_major, dtype.name)
    verdict = _VERDICTS.get(key)
    if verdict is None:
        rng = np.random.default_rng(12345)
        verdict = True
        P = rows + 3  # the output is a strided block of a (K, P) array, as in a Stack
        for a, dl in _rounds(
            K * rows,
            lambda: zip(
                _trial_inputs(rng, (K, rows, m), sample_major, dtype),
                _trial_inputs(rng, (K, 1, m), False, dtype),
                strict=True,
            ),
        ):
            ref = np.stack([np.dot(a[k], dl[k].T) for k in range(K)])
            fast = np.zeros((K, P), dtype)
            np.einsum("kip,kp->ki", a, dl[:, 0], out=fast[:, 1 : 1 + rows])
            verdict = verdict and _same_bits(ref[..., 0], fast[:, 1 : 1 + rows].copy())
        _VERDICTS[key] = verdict
    return verdict
