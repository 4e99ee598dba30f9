"""Weight initialisation schemes."""

from __future__ import annotations

INITS: dict[str, str] = {
    "uniform": "uniform(-r, r); give r as a float (init=0.3, the 1986 paper's small weights)",
    "xavier": "Glorot/Xavier uniform, r = sqrt(6 / (fan_in + fan_out))",
    "he": "He normal, standard deviation sqrt(2 / fan_in)",
}
