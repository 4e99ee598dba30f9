"""Unit activation functions, each beside its derivative.

Hidden and output units compute o = f(i) from their net input i = sum_j o_j w_jk.
The derivatives are written from the unit's *output* o, as the 1986 paper writes
f'(i) = o(1 - o) for the logistic unit: backprop then needs no copy of the net
inputs, and the forward pass can overwrite them in place.

Every function writes into ``out`` (which may alias its input) so that the
training loop allocates nothing per step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray

ACTIVATIONS: dict[str, str] = {
    "sigmoid": "logistic 1 / (1 + exp(-i)), the 1986 paper's unit",
    "tanh": "hyperbolic tangent",
    "relu": "rectified linear max(0, i)",
    "identity": "linear o = i",
}

OUTPUT_ACTIVATIONS: dict[str, str] = {
    "sigmoid": "logistic, one independent unit per output",
    "softmax": "normalised exponentials over the outputs of a sample",
    "identity": "linear outputs (regression)",
}


def check_name(kind: str, name: str, table: dict[str, str]) -> str:
    """Return ``name`` if it is in ``table``, else raise ValueError listing the valid names."""
    if name not in table:
        valid = ", ".join(sorted(table))
        raise ValueError(f"unknown {kind} {name!r}; valid names: {valid}")
    return name


def sigmoid(z: Array, out: Array) -> Array:
    # exp(-z) overflows to inf for z < -709; 1 / (1 + inf) is then the right 0.
    # Callers run under np.errstate(over="ignore"), so no warning escapes.
    np.negative(z, out=out)
    np.exp(out, out=out)
    np.add(out, 1.0, out=out)
    return np.reciprocal(out, out=out)


def tanh(z: Array, out: Array) -> Array:
    return np.tanh(z, out=out)


def relu(z: Array, out: Array) -> Array:
    return np.maximum(z, 0.0, out=out)


def identity(z: Array, out: Array) -> Array:
    if out is not z:
        np.copyto(out, z)
    return out


def softmax(z: Array, out: Array) -> Array:
    """Softmax over the units of each sample (axis -2: buffers are (units, samples), or
    (members, units, samples) in a population); shifting by the maximum keeps exp from
    overflowing."""
    np.subtract(z, z.max(axis=-2, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-2, keepdims=True)
    return out


FORWARD: dict[str, Callable[[Array, Array], Array]] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "identity": identity,
    "softmax": softmax,
}


# Derivatives f'(i) written from the output o. They *multiply* ``delta`` in place
# by f'(i) (that is all backprop ever does with them), using ``tmp`` as scratch.
def _sigmoid_grad(o: Array, delta: Array, tmp: Array) -> None:
    np.subtract(1.0, o, out=tmp)  # o(1 - o)
    tmp *= o
    delta *= tmp


def _tanh_grad(o: Array, delta: Array, tmp: Array) -> None:
    np.multiply(o, o, out=tmp)  # 1 - o^2
    np.subtract(1.0, tmp, out=tmp)
    delta *= tmp


def _relu_grad(o: Array, delta: Array, tmp: Array) -> None:
    np.greater(o, 0.0, out=tmp)  # 1 where the unit is on, 0 where it is off
    delta *= tmp


def _identity_grad(o: Array, delta: Array, tmp: Array) -> None:
    return None


DERIVATIVES: dict[str, Callable[[Array, Array, Array], None]] = {
    "sigmoid": _sigmoid_grad,
    "tanh": _tanh_grad,
    "relu": _relu_grad,
    "identity": _identity_grad,
}
