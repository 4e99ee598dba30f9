"""The floating-point types a network can train in, and the numbers that depend on them.

Everything a net computes with (its parameters, activations, deltas, gradients, the
optimizer's buffers and the data) is of its one dtype. float32 follows PyTorch's float32
SGD: the learning rate and momentum enter as float32 numbers (a Python float meets a
float32 array as float32 under NumPy 2's promotion rules), so every step is float32
arithmetic end to end and nothing is upcast. A per-step scalar that is a product of
settings (-eps / n for the mean costs, Adam's bias corrections) is computed in float64,
as Python computes it for a single net, and rounded to float32 once: a population's
member then gets the very numbers of its lone run. Metrics leave the engine as float64
(Python floats for a single net), from the float32 sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import check_name

DTYPES: dict[str, str] = {
    "float64": "double precision, the default",
    "float32": "single precision: about twice the speed on wide nets, as PyTorch's default",
}


def as_dtype(name: Any) -> np.dtype:
    """The numpy dtype of a name in DTYPES (or of such a dtype); ValueError otherwise."""
    if isinstance(name, np.dtype | type):
        name = np.dtype(name).name
    return np.dtype(check_name("dtype", name, DTYPES))


def tiny(dtype: np.dtype) -> float:
    """The smallest positive normal number of ``dtype``, as a Python float (exact)."""
    return float(np.finfo(dtype).tiny)


def one_below(dtype: np.dtype) -> float:
    """The largest number of ``dtype`` below 1, as a Python float (exact in ``dtype``)."""
    return float(np.nextafter(dtype.type(1.0), dtype.type(0.0)))
