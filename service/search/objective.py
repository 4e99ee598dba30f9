"""A configuration's value for the sampler, aggregated over its seeds.

Seeds are replicates: the sampler is told one number per configuration, the mean or median
of the metric over its seeds, so one lucky or unlucky seed does not decide. What each run
contributes:

- loss metrics: the run's value; a diverged run (NaN or infinite loss) the worst possible;
- accuracy, val_accuracy: the run's value (a diverged run: the worst possible);
- solved_epoch: the first solved epoch, or the run's epoch budget when it never solved;
- success: 1 if the run solved, else 0 (the mean is the success rate).

Failed and cancelled runs are left out (their result says nothing about the configuration);
a configuration with none left is a failed trial. Runs of status ``pruned`` (the pruning
issue) make the trial PRUNED: ``outcome`` returns that state, and the driver tells the
sampler so, as Optuna does for BOHB-like searches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PENDING = ("queued", "running")
COUNTED = ("succeeded", "diverged")
# The sampler is never told an infinity (a Gaussian process or CMA-ES cannot fit one): a
# diverged seed counts as this, with the goal's sign, which is worse than any real value.
WORST = 1e12


@dataclass(frozen=True)
class Outcome:
    """running | complete | fail | pruned, and the value when complete."""

    state: str
    value: float | None = None


def run_value(run: dict[str, Any], metric: dict[str, str]) -> float:
    """One run's contribution (see the module docstring), on the metric's own scale."""
    name = metric["name"]
    worst = WORST if metric["goal"] == "minimize" else -WORST
    if name == "success":
        return 0.0 if run.get("solved_epoch") is None else 1.0
    if name == "solved_epoch":
        solved = run.get("solved_epoch")
        return float(run["epochs"] if solved is None else solved)
    value = run.get(name)
    if value is None or not math.isfinite(float(value)):
        return worst
    return float(value)


def outcome(runs: Sequence[dict[str, Any]], metric: dict[str, str]) -> Outcome:
    """The trial state and value of a configuration from its runs (all its seeds)."""
    statuses = [r["status"] for r in runs]
    if not runs or any(s in PENDING for s in statuses):
        return Outcome("running")
    if "pruned" in statuses:  # decided over the seeds by the pruner: all of them stop
        return Outcome("pruned")
    values = [run_value(r, metric) for r in runs if r["status"] in COUNTED]
    if not values:
        return Outcome("fail")
    reduce = np.median if metric["aggregate"] == "median" else np.mean
    return Outcome("complete", float(reduce(np.asarray(values, dtype=float))))


def better(a: float, b: float, goal: str) -> bool:
    """Whether value a beats value b under the goal."""
    return a < b if goal == "minimize" else a > b
