"""A validated sweep and its expansion into runs (grid or random, times seeds).

Each parameter becomes an Axis: the distinct values it takes (one when fixed) or a
distribution. A grid is the product of the axes; a random sweep draws `samples`
configurations from them with a generator seeded by `sampler_seed`, so a plan printed
today is the plan that runs tomorrow.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .parameters import PARAMETERS

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")


def value_key(value: Any) -> str:
    """Identity of a normalised value (or config): 1 and 1.0 are already both 1.0 here."""
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Distribution:
    kind: str  # one of DISTRIBUTIONS
    low: float | int
    high: float | int

    def draw(self, rng: np.random.Generator, integral: bool) -> float | int:
        if self.kind == "int_uniform":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "uniform":
            x = float(rng.uniform(self.low, self.high))
        else:
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        # exp(log(x)) can land a hair outside [low, high]; an integer parameter is rounded.
        x = min(max(x, self.low), self.high)
        return int(min(max(round(x), self.low), self.high)) if integral else x


@dataclass(frozen=True)
class Axis:
    """What one parameter contributes: its distinct values, or a distribution."""

    name: str
    values: tuple[Any, ...] = ()
    distribution: Distribution | None = None

    @property
    def varies(self) -> bool:
        return self.distribution is not None or len(self.values) > 1

    def spec_form(self) -> Any:
        """The entry as a spec would write it; parsing it again gives this axis back."""
        d = self.distribution
        if d is not None:
            return {"distribution": d.kind, "min": d.low, "max": d.high}
        if not PARAMETERS[self.name].sweepable:
            return copy.deepcopy(self.values[0])
        if self.name == "hidden":
            # In a spec a list of sizes sweeps one-layer nets, so a fixed [4, 4] is [[4, 4]].
            items = [v[0] if len(v) == 1 else list(v) for v in self.values]
            if len(items) > 1:
                return items
            return items[0] if isinstance(items[0], int) else items
        if len(self.values) == 1:
            return copy.deepcopy(self.values[0])
        return copy.deepcopy(list(self.values))


@dataclass(frozen=True)
class RunSpec:
    """One run: a full run configuration (see common.md) and its seed."""

    config: dict[str, Any]
    seed: int
    config_index: int  # position of the config in SweepSpec.configs(); seeds share it


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec. Build it with load_spec or parse_spec, never by hand."""

    name: str
    dataset: str
    method: str
    samples: int | None
    seeds: list[int]
    parameters: dict[str, Any]
    swept: list[str]
    spec_dict: dict[str, Any]
    axes: tuple[Axis, ...] = field(repr=False)
    drawn: tuple[dict[str, Any], ...] | None = field(default=None, repr=False)
    # tpe, gp, cmaes: the configurations to try; the search picks them as it goes, so
    # configs() and expand() are empty and a driver records the runs (service.search).
    run_cap: int | None = None

    @property
    def adaptive(self) -> bool:
        return self.run_cap is not None

    def _config(self, values: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {"dataset": self.dataset}
        for name in PARAMETERS:
            config[name] = copy.deepcopy(values[name])
        return config

    def configs(self) -> list[dict[str, Any]]:
        """The distinct run configurations, without seeds, in run order."""
        if self.adaptive:
            return []
        if self.drawn is not None:
            return [copy.deepcopy(c) for c in self.drawn]
        names = [axis.name for axis in self.axes]
        return [
            self._config(dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(axis.values for axis in self.axes))
        ]

    def count_configs(self) -> int:
        if self.run_cap is not None:
            return self.run_cap  # at most
        if self.drawn is not None:
            return len(self.drawn)
        return math.prod(len(axis.values) for axis in self.axes)

    def count_runs(self) -> int:
        """configs x seeds, without expanding the grid."""
        return self.count_configs() * len(self.seeds)

    def estimate_epochs(self) -> int:
        """Total epochs if no run stops early: an upper bound for the plan."""
        if self.run_cap is not None:
            axis = next(axis for axis in self.axes if axis.name == "epochs")
            most = axis.distribution.high if axis.distribution else max(axis.values)
            return int(most) * self.run_cap * len(self.seeds)
        if self.drawn is not None:
            return sum(c["epochs"] for c in self.drawn) * len(self.seeds)
        epochs = next(axis for axis in self.axes if axis.name == "epochs")
        others = self.count_configs() // len(epochs.values)
        return sum(epochs.values) * others * len(self.seeds)

    def expand(self) -> list[RunSpec]:
        """Every run: configs in grid (or draw) order, seeds inner."""
        return [
            RunSpec(config=copy.deepcopy(config), seed=seed, config_index=i)
            for i, config in enumerate(self.configs())
            for seed in self.seeds
        ]


def draw_configs(
    dataset: str, axes: tuple[Axis, ...], samples: int, sampler_seed: int
) -> tuple[dict[str, Any], ...]:
    """`samples` random configs; identical draws are kept once."""
    rng = np.random.default_rng(sampler_seed)
    by_name = {axis.name: axis for axis in axes}
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(samples):
        config: dict[str, Any] = {"dataset": dataset}
        # Canonical order, so reordering the spec's keys does not change the draws.
        for name, param in PARAMETERS.items():
            axis = by_name[name]
            if axis.distribution is not None:
                x = axis.distribution.draw(rng, integral=param.numeric == "int")
                config[name] = param.check(x, f"parameters.{name}")
            elif len(axis.values) > 1:
                config[name] = copy.deepcopy(axis.values[int(rng.integers(len(axis.values)))])
            else:
                config[name] = copy.deepcopy(axis.values[0])
        seen.setdefault(value_key(config), config)
    return tuple(seen.values())
