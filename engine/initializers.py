"""Weight initialisation: uniform(-r, r) (the 1986 paper's small random weights), Xavier, He.

Biases are weights from an always-on unit (the paper's view), so ``uniform`` draws
them like any other weight; ``xavier`` and ``he`` start them at 0 as is usual for
those schemes. Every draw comes from the caller's Generator, layer by layer, W then b.
"""

from __future__ import annotations

import math

import numpy as np

INITS: dict[str, str] = {
    "uniform": "uniform(-r, r), weights and biases; give r as a float (init=0.3); "
    "the name alone means r = 0.3",
    "xavier": "Glorot/Xavier uniform, r = sqrt(6 / (fan_in + fan_out)), biases 0",
    "he": "He normal, standard deviation sqrt(2 / fan_in), biases 0",
}

DEFAULT_UNIFORM_RANGE = 0.3


def check_init(init: float | str) -> float | str:
    """Validate an init spec: a float r > 0 or a name from INITS."""
    if isinstance(init, bool):
        raise ValueError(f"init must be a float r > 0 or one of {', '.join(INITS)}; got {init!r}")
    if isinstance(init, int | float):
        if not (math.isfinite(init) and init > 0):
            raise ValueError(f"uniform init range must be a finite float > 0, got {init!r}")
        return float(init)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: a float r > 0 or {', '.join(INITS)}")
    return DEFAULT_UNIFORM_RANGE if init == "uniform" else init


def init_layer(
    init: float | str, fan_in: int, fan_out: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (W: (fan_in, fan_out), b: (fan_out,)) for one layer."""
    spec = check_init(init)
    if isinstance(spec, float):
        W = rng.uniform(-spec, spec, size=(fan_in, fan_out))
        b = rng.uniform(-spec, spec, size=fan_out)
    elif spec == "xavier":
        r = math.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-r, r, size=(fan_in, fan_out))
        b = np.zeros(fan_out)
    else:  # he
        W = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        b = np.zeros(fan_out)
    return W, b
