"""Cost functions E(o, e), each beside the delta it sends back into the output layer.

Costs are sums of per-sample terms; ``mse`` and ``cross_entropy`` then divide by
the number of samples n (means), ``sse`` does not (the 1986 paper's
E = 1/2 sum_c sum_j (o_jc - e_jc)^2; with the mean the same learning rate would be
n times smaller).

* ``sse``:  E = 1/2 sum (o - e)^2
* ``mse``:  E = 1/(2n) sum (o - e)^2     (n = samples; the sum runs over outputs too)
* ``cross_entropy``: categorical -1/n sum e log o for softmax outputs, otherwise
  binary -1/n sum [e log o + (1 - e) log(1 - o)] (defined for outputs in (0, 1)).

The output delta is dE/di at the output units: dE/do * f'(i). Where the pair
allows it the product collapses to ``o - e`` (sigmoid + binary cross-entropy;
softmax + categorical cross-entropy when each target row sums to 1); every
other pair goes through the general chain rule, so any cost pairs with any
output activation.

``dead_zone`` is the 1986 paper's error margin: an output within the margin of its
target has no error and no delta (TrainConfig.error_margin).

Arrays are unit-major, (d_out, n), as in the network's buffers; ``output_delta`` also
takes a population's stacked (K, d_out, n) arrays (it reduces over axis -2 only). Functions take
``diff = o - e`` precomputed: the training loop computes it once
for the epoch's metrics and reuses it for the next gradient.
"""

from __future__ import annotations

import numpy as np

from .dtypes import DTYPES, one_below, tiny

Array = np.ndarray

COSTS: dict[str, str] = {
    "sse": "summed squared error 1/2 sum (o - e)^2, the 1986 paper's E",
    "mse": "mean squared error 1/(2n) sum (o - e)^2 over n samples",
    "cross_entropy": "categorical for softmax outputs, binary otherwise; mean over samples",
}

MEAN_COSTS = frozenset({"mse", "cross_entropy"})

# Saturated logistic units return exactly 0.0 or 1.0; the logarithms are taken of
# outputs clipped to [TINY, ONE_BELOW] so that a confident right answer costs
# ~0 instead of 0 * log(0) = nan. (The delta o - e needs no clipping.)
# Both are of the outputs' dtype (engine.dtypes), Python floats so that they never upcast.
_TINY = {np.dtype(t): tiny(np.dtype(t)) for t in DTYPES}
_ONE_BELOW = {np.dtype(t): one_below(np.dtype(t)) for t in DTYPES}


def cost_sum(cost: str, output_activation: str, o: Array, e: Array, diff: Array) -> float:
    """Sum over samples and outputs of the per-sample cost terms (before any 1/n).

    ``o, e, diff``: (d_out, n), ``diff = o - e``.
    """
    if cost != "cross_entropy":
        flat = diff.reshape(-1)
        return 0.5 * float(np.dot(flat, flat))
    if output_activation == "softmax":
        logo = np.log(np.maximum(o, _TINY[o.dtype]))
        return -float(np.vdot(e, logo))
    if output_activation == "sigmoid":
        o = np.clip(o, _TINY[o.dtype], _ONE_BELOW[o.dtype])
    # identity outputs are not clipped: outside (0, 1) the cost is undefined (nan)
    # and the run is reported as diverged rather than trained on a made-up number.
    with np.errstate(invalid="ignore", divide="ignore"):
        return -float(np.vdot(e, np.log(o)) + np.vdot(1.0 - e, np.log1p(-o)))


def output_delta(
    cost: str,
    output_activation: str,
    o: Array,
    e: Array,
    diff: Array,
    delta: Array,
    tmp: Array,
    scale: float | Array,
    rows_sum_to_one: bool = False,
) -> None:
    """Write dE/di for the output units into ``delta`` (d_out, n).

    ``scale`` is 1 for ``sse`` and 1/n for the mean costs, times a trainer's factor (a
    float, or per member (K, 1, 1) in a population); ``tmp`` is scratch of
    delta's shape. ``rows_sum_to_one`` (each target row sums to 1) enables the
    softmax + cross-entropy shortcut.
    """
    if cost == "cross_entropy":
        if output_activation == "sigmoid":
            # dE/do = (o - e) / (o(1 - o)) and f' = o(1 - o): they cancel.
            np.multiply(diff, scale, out=delta)
        elif output_activation == "softmax":
            if rows_sum_to_one:
                np.multiply(diff, scale, out=delta)
            else:
                # exact in general: dE/di_j = o_j sum_k e_k - e_j
                np.multiply(o, e.sum(axis=-2, keepdims=True), out=delta)
                delta -= e
                delta *= scale
        else:  # identity: the chain rule with f' = 1
            np.subtract(1.0, o, out=tmp)
            tmp *= o
            np.divide(diff, tmp, out=delta)
            delta *= scale
        return
    # squared errors: dE/do = scale * (o - e)
    if output_activation == "sigmoid":
        np.subtract(1.0, o, out=tmp)
        tmp *= o
        np.multiply(diff, tmp, out=delta)
        if not (isinstance(scale, float) and scale == 1.0):
            delta *= scale
    elif output_activation == "identity":
        np.multiply(diff, scale, out=delta)
    else:  # softmax: the Jacobian-vector product o * (g - sum_k g_k o_k)
        np.multiply(diff, scale, out=tmp)
        s = np.einsum("...ij,...ij->...j", tmp, o)[..., None, :]
        np.subtract(tmp, s, out=delta)
        delta *= o


def dead_zone(diff: Array, margin: float | Array, tmp: Array) -> Array:
    """The 1986 paper's dead zone: set the error ``diff = o - e`` to 0 where an output is
    within ``margin`` of its target (for 0/1 targets: above 1 - margin when the target is
    1, below margin when it is 0), and return where (bool, diff's shape). ``margin``: a
    float, or per member (K, 1, 1); a member's margin 0 changes nothing. ``tmp``: scratch.

    The caller also zeroes the output deltas there: with sigmoid or identity outputs they
    are 0 already, softmax couples its units and would pass the others' error on.
    """
    np.abs(diff, out=tmp)
    inside = tmp < margin
    np.copyto(diff, 0.0, where=inside)
    return inside
