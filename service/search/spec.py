"""The keys an adaptive spec adds: method tpe | gp | cmaes, metric, run_cap.

Called by service.spec.validate; raises Invalid like every other check, so a bad key is
one line naming the file and the field, exit 2, and nothing is written.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from service.spec.checks import int_check
from service.spec.errors import Invalid, show, unknown_name

ADAPTIVE_METHODS = ("tpe", "gp", "cmaes")
METRIC_NAMES = (
    "final_loss",
    "best_loss",
    "val_loss",
    "accuracy",
    "val_accuracy",
    "solved_epoch",
    "success",
)
# The goal a metric has unless the spec says otherwise.
MAXIMIZED = ("accuracy", "val_accuracy", "success")
GOALS = ("minimize", "maximize")
AGGREGATES = ("mean", "median")
METRIC_KEYS = ("name", "goal", "aggregate")
# The most configurations one search may try: each ask rebuilds nothing, but the model-based
# samplers' cost grows with the trials (a Gaussian process, cubically).
MAX_RUN_CAP = 10_000
# What each sampler imports beyond Optuna, kept out of bplab's required dependencies.
_NEEDS = {"gp": ("torch", "PyTorch", "torch"), "cmaes": ("cmaes", "cmaes", "cmaes")}


def default_metric() -> dict[str, str]:
    return {"name": "final_loss", "goal": "minimize", "aggregate": "mean"}


def parse_metric(value: Any) -> dict[str, str]:
    """`metric: NAME` or `{name, goal, aggregate}`; goal defaults to the metric's own."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise Invalid(
            "metric",
            f"must be a metric name or a mapping {{name, goal, aggregate}}, got {show(value)}",
        )
    for key in value:
        if key not in METRIC_KEYS:
            raise Invalid(f"metric.{key}", unknown_name("key", None, METRIC_KEYS, keep_order=True))
    name = value.get("name")
    if name is None:
        raise Invalid("metric.name", f"missing: one of {', '.join(METRIC_NAMES)}")
    if name not in METRIC_NAMES:
        raise Invalid("metric.name", _choice("metric", name, METRIC_NAMES))
    goal = value.get("goal", "maximize" if name in MAXIMIZED else "minimize")
    if goal not in GOALS:
        raise Invalid("metric.goal", _choice("goal", goal, GOALS))
    aggregate = value.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise Invalid("metric.aggregate", _choice("aggregate", aggregate, AGGREGATES))
    return {"name": name, "goal": goal, "aggregate": aggregate}


def _choice(kind: str, value: Any, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        return unknown_name(kind, value, allowed, keep_order=True)
    return f"must be one of {', '.join(allowed)}, got {show(value)}"


def parse_run_cap(data: dict[str, Any], method: str) -> int:
    if "run_cap" not in data:
        raise Invalid(
            "run_cap", f"missing: a {method} search needs run_cap (how many configurations to try)"
        )
    return int_check(1, MAX_RUN_CAP)(data["run_cap"], "run_cap")


def check_sampler_installed(method: str) -> None:
    """gp needs PyTorch and cmaes the cmaes package: say so before anything is written."""
    if method not in _NEEDS:
        return
    module, name, package = _NEEDS[method]
    if importlib.util.find_spec(module) is None:
        raise Invalid(
            "method",
            f"{method} needs {name}, which is not installed here: pip install {package} "
            "(or use method: tpe)",
        )


def check_metric_recorded(metric: dict[str, str], axes: dict[str, Any]) -> None:
    """A metric the runs will not record (val_* without a validation split, solved_* without
    stop_within) would make every configuration look alike: refuse it."""
    name = metric["name"]
    if name.startswith("val_"):
        axis = axes["validation_split"]
        lows = [axis.distribution.low] if axis.distribution is not None else list(axis.values)
        if any(v <= 0 for v in lows):
            raise Invalid(
                "metric.name",
                f"{name} needs a validation split: set parameters.validation_split > 0",
            )
    if name in ("solved_epoch", "success") and None in axes["stop_within"].values:
        raise Invalid("metric.name", f"{name} needs stop_within (a tolerance > 0), which is null")
