"""The `schedule` parameter: phases {until, learning_rate?, momentum?} with increasing `until`."""

from __future__ import annotations

from typing import Any

from .checks import epoch_count, positive_float, unit_interval
from .errors import Invalid, show, suggest, unknown_name
from .parameters import ALIASES

_PHASE_KEYS = {"until": epoch_count, "learning_rate": positive_float, "momentum": unit_interval}


def schedule_check(value: Any, field: str) -> list[dict[str, Any]]:
    """A list of phases {until, learning_rate?, momentum?} with increasing `until`."""
    if not isinstance(value, list):
        raise Invalid(
            field,
            f"must be a list of phases {{until, learning_rate?, momentum?}}, got {show(value)}",
        )
    phases: list[dict[str, Any]] = []
    for i, phase in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(phase, dict):
            raise Invalid(
                where, f"must be a mapping {{until, learning_rate?, momentum?}}, got {show(phase)}"
            )
        for key in phase:
            if key not in _PHASE_KEYS:
                raise Invalid(
                    f"{where}.{key}",
                    unknown_name(
                        "phase key",
                        None,
                        _PHASE_KEYS,
                        keep_order=True,
                        hint=suggest(str(key), _PHASE_KEYS, ALIASES),
                    ),
                )
        if "until" not in phase:
            raise Invalid(f"{where}.until", "missing: the last epoch of the phase (int >= 1)")
        if "learning_rate" not in phase and "momentum" not in phase:
            raise Invalid(where, "a phase must set learning_rate, momentum or both")
        checked = {
            key: _PHASE_KEYS[key](phase[key], f"{where}.{key}")
            for key in _PHASE_KEYS
            if key in phase
        }
        if phases and checked["until"] <= phases[-1]["until"]:
            raise Invalid(
                f"{where}.until",
                f"must be greater than the previous phase's until ({phases[-1]['until']}), "
                f"got {checked['until']}",
            )
        phases.append(checked)
    return phases
