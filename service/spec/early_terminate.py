"""The spec's ``early_terminate`` key (issue 15): which rule stops bad configurations early.

Checked like every other key: the first problem is one line naming the field (exit 2,
nothing written). The normalised mapping is stored with the sweep's spec, so every executor,
local or Celery, reads the same rule for the runs of that sweep (service.pruning).
"""

from __future__ import annotations

from typing import Any

from .errors import Invalid, show, suggest, unknown_name
from .sweep import Axis

TYPES = ("median", "asha", "hyperband")
METRICS = ("loss", "val_loss", "accuracy", "val_accuracy")
UNITS = ("config", "run")
AGGREGATES = ("mean", "median")
KEYS = ("type", "metric", "min_epochs", "reduction_factor", "brackets", "unit", "aggregate")
FIELD = "early_terminate"
# More brackets than this would start the last one past any sensible epoch budget
# (min_epochs * eta**b grows geometrically).
MAX_BRACKETS = 10
# What the peers call these keys (Hyperband's and Ray's eta, Ray's grace_period, Optuna's
# min_resource, W&B's min_iter), for the did-you-mean of an unknown key.
ALIASES = {
    "eta": "reduction_factor",
    "grace_period": "min_epochs",
    "min_resource": "min_epochs",
    "min_iter": "min_epochs",
    "mode": "metric",
}


def check_early_terminate(raw: Any, axes: dict[str, Axis]) -> dict[str, Any]:
    """The rule with its defaults filled in, or Invalid naming the first bad field."""
    if not isinstance(raw, dict):
        raise Invalid(FIELD, f"must be a mapping with type: {' | '.join(TYPES)}, got {show(raw)}")
    for key in raw:
        if key not in KEYS:
            hint = suggest(str(key), KEYS, ALIASES)
            message = unknown_name("key", None, KEYS, keep_order=True, hint=hint)
            raise Invalid(f"{FIELD}.{key}", message)
    kind = raw.get("type")
    if kind not in TYPES:
        raise Invalid(f"{FIELD}.type", f"must be one of {', '.join(TYPES)}, got {show(kind)}")
    metric = raw.get("metric", "val_loss" if _has_validation(axes) else "loss")
    if metric not in METRICS:
        raise Invalid(f"{FIELD}.metric", f"must be one of {', '.join(METRICS)}, got {show(metric)}")
    if metric.startswith("val_") and not _has_validation(axes):
        raise Invalid(
            f"{FIELD}.metric", f"{metric} needs parameters.validation_split > 0 in every run"
        )
    rule: dict[str, Any] = {"type": kind, "metric": metric}
    rule["min_epochs"] = _int(raw, "min_epochs", None, 1)
    # Only the keys that apply are stored, so that the stored spec validates again as is.
    if kind != "median":
        rule["reduction_factor"] = _int(raw, "reduction_factor", 3, 2)
    if kind == "hyperband":
        rule["brackets"] = _int(raw, "brackets", 3, 1)
        if rule["brackets"] > MAX_BRACKETS:
            raise Invalid(f"{FIELD}.brackets", f"at most {MAX_BRACKETS}, got {rule['brackets']}")
    elif "brackets" in raw:
        raise Invalid(f"{FIELD}.brackets", "only used with type: hyperband")
    if kind == "median" and "reduction_factor" in raw:
        raise Invalid(f"{FIELD}.reduction_factor", "only used with type: asha or hyperband")
    rule["unit"] = _choice(raw, "unit", UNITS)
    if rule["unit"] == "config":
        rule["aggregate"] = _choice(raw, "aggregate", AGGREGATES)
    elif "aggregate" in raw:
        raise Invalid(f"{FIELD}.aggregate", "only used with unit: config (over its seeds)")
    most = _max_epochs(axes)
    if most is not None and rule["min_epochs"] >= most:
        raise Invalid(
            f"{FIELD}.min_epochs",
            f"must be below the runs' epochs ({most}), got {rule['min_epochs']}: nothing"
            " would ever be decided",
        )
    return rule


def _int(raw: dict[str, Any], key: str, default: int | None, low: int) -> int:
    if key not in raw:
        if default is None:
            raise Invalid(f"{FIELD}.{key}", "missing: the first epoch at which a run is judged")
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise Invalid(f"{FIELD}.{key}", f"must be an integer >= {low}, got {show(value)}")
    return value


def _choice(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = raw.get(key, allowed[0])
    if value not in allowed:
        raise Invalid(f"{FIELD}.{key}", f"must be one of {', '.join(allowed)}, got {show(value)}")
    return str(value)


def _has_validation(axes: dict[str, Axis]) -> bool:
    axis = axes.get("validation_split")
    if axis is None:
        return False
    if axis.distribution is not None:
        return axis.distribution.low > 0  # type: ignore[attr-defined]
    return all(isinstance(v, int | float) and v > 0 for v in axis.values)


def _max_epochs(axes: dict[str, Axis]) -> int | None:
    axis = axes.get("epochs")
    if axis is None or axis.distribution is not None or not axis.values:
        return None
    return max(int(v) for v in axis.values)


__all__ = ["KEYS", "METRICS", "TYPES", "check_early_terminate"]
