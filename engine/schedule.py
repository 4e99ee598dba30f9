"""Phased learning rate and momentum (the 1986 family-trees recipe changes alpha after 20 sweeps).

A schedule is a list of phases {"until": E, "learning_rate"?: float, "momentum"?: float}
with increasing ``until``; a phase's values hold for the epochs after the previous
phase's ``until`` up to and including its own. Missing values, and every epoch after
the last phase, use the run's base values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


class Phase(NamedTuple):
    until: int
    learning_rate: float | None = None
    momentum: float | None = None


_KEYS = {"until", "learning_rate", "momentum"}


def parse_schedule(phases: Iterable[Mapping[str, Any] | Phase] | None) -> tuple[Phase, ...]:
    """Validate and normalise phases; ValueError names the bad phase."""
    out: list[Phase] = []
    for k, raw in enumerate(phases or ()):
        phase = raw._asdict() if isinstance(raw, Phase) else dict(raw)
        unknown = set(phase) - _KEYS
        if unknown:
            raise ValueError(
                f"schedule phase {k}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}"
            )
        until = phase.get("until")
        if isinstance(until, bool) or not isinstance(until, int) or until < 1:
            raise ValueError(f"schedule phase {k}: 'until' must be an int >= 1, got {until!r}")
        if out and until <= out[-1].until:
            raise ValueError(f"schedule phase {k}: 'until' values must increase")
        lr, mom = phase.get("learning_rate"), phase.get("momentum")
        if lr is not None:
            lr = float(lr)
            if not (math.isfinite(lr) and lr > 0):
                raise ValueError(f"schedule phase {k}: learning_rate must be > 0, got {lr}")
        if mom is not None:
            mom = float(mom)
            if not 0.0 <= mom < 1.0:
                raise ValueError(f"schedule phase {k}: momentum must be in [0, 1), got {mom}")
        out.append(Phase(until, lr, mom))
    return tuple(out)


def values_at(
    schedule: tuple[Phase, ...], epoch: int, learning_rate: float, momentum: float
) -> tuple[float, float]:
    """(learning_rate, momentum) in force during ``epoch`` (numbered from 1)."""
    for phase in schedule:
        if epoch <= phase.until:
            lr = learning_rate if phase.learning_rate is None else phase.learning_rate
            mom = momentum if phase.momentum is None else phase.momentum
            return lr, mom
    return learning_rate, momentum
