"""The swept axes of a spec as Optuna distributions, and a sampler's params as a run config.

A list of values is a categorical choice; Optuna's choices must be plain scalars, so each is
the value's canonical JSON text (a hidden [4, 4] is "[4, 4]"), read back exactly. A numeric
distribution keeps its scale: log_uniform is a log-scaled float (or int) distribution.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from service.spec.parameters import PARAMETERS
from service.spec.sweep import Axis, SweepSpec, value_key


def search_space(spec: SweepSpec) -> dict[str, BaseDistribution]:
    """One distribution per parameter the spec varies, in the parameters' canonical order
    (so that reordering a spec's keys asks the same configurations)."""
    by_name = {axis.name: axis for axis in spec.axes}
    return {name: _distribution(by_name[name]) for name in PARAMETERS if by_name[name].varies}


def _distribution(axis: Axis) -> BaseDistribution:
    d = axis.distribution
    if d is None:
        return CategoricalDistribution([value_key(v) for v in axis.values])
    log = d.kind == "log_uniform"
    if d.kind == "int_uniform" or PARAMETERS[axis.name].numeric == "int":
        return IntDistribution(int(d.low), int(d.high), log=log)
    return FloatDistribution(float(d.low), float(d.high), log=log)


def to_config(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The run configuration for a sampler's params (fixed parameters from the spec)."""
    config: dict[str, Any] = {"dataset": spec.dataset}
    for axis in spec.axes:
        name = axis.name
        if not axis.varies:
            config[name] = copy.deepcopy(axis.values[0])
        elif axis.distribution is None:
            config[name] = json.loads(params[name])
        else:
            config[name] = PARAMETERS[name].check(params[name], f"parameters.{name}")
    return {"dataset": spec.dataset, **{name: config[name] for name in PARAMETERS}}
