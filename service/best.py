"""`bplab best`: the best configuration of a sweep by one objective over its seeds.

Seeds are replicates, so a configuration is judged by the mean (or median) of the metric over
its seeds, never by its luckiest run. What a run contributes, as the search's objective:
succeeded and diverged runs count, failed and cancelled ones say nothing about the
configuration and are left out; a diverged run (NaN or infinite value) counts as the worst
possible, so a configuration that diverges on any seed ranks below every one that never does;
``solved_epoch`` counts a run that never solved at its epoch budget. The winner is compared
with the runner-up paired by seed, exactly as `bplab compare` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service import compare as cmp
from service.db.repository import config_key
from service.results import PENDING, param_value

# metric -> the goal it has when none is given
METRICS: dict[str, str] = {
    "final_loss": "min",
    "best_loss": "min",
    "val_loss": "min",
    "accuracy": "max",
    "solved_epoch": "min",
    "epochs_run": "min",
    "wall_time_s": "min",
}
# `compare` pairs on its METRICS, which may not list the validation loss: `best` pairs on it.
cmp.METRICS.setdefault("val_loss", ("validation loss", True))
GOALS = {"min": "min", "max": "max", "minimize": "min", "maximize": "max"}
AGGREGATES = ("mean", "median")
COUNTED = ("succeeded", "diverged")


class BestError(ValueError):
    """No best configuration can be named: the message says why."""


def default_metric(spec: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> str:
    """The sweep's own objective (a search's metric), else val_loss where recorded, else
    final_loss."""
    named = spec.get("metric")
    name = named.get("name") if isinstance(named, Mapping) else named
    if isinstance(name, str) and name in METRICS:
        return name
    if any(r.get("val_loss") is not None for r in runs):
        return "val_loss"
    return "final_loss"


def run_value(run: Mapping[str, Any], metric: str, goal: str) -> float | None:
    """One run's contribution (module docstring); None when it does not count."""
    if run["status"] not in COUNTED:
        return None
    if metric == "solved_epoch":
        solved = run.get("solved_epoch")
        return float(run["config"].get("epochs", 0) if solved is None else solved)
    value = run.get(metric)
    if value is None or not math.isfinite(float(value)):
        return math.inf if goal == "min" else -math.inf
    return float(value)


def _config_row(runs: list[dict[str, Any]], metric: str, goal: str, aggregate: str) -> dict:
    values = [v for v in (run_value(r, metric, goal) for r in runs) if v is not None]
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    reduce = np.median if aggregate == "median" else np.mean
    return {
        "value": float(reduce(arr)) if arr.size else None,
        "sd": float(np.std(finite, ddof=1)) if finite.size >= 2 else None,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "seeds": len(runs),
        "counted": int(arr.size),
        "diverged": sum(1 for r in runs if r["status"] == "diverged"),
        "pending": sum(1 for r in runs if r["status"] in PENDING),
        "run_ids": [r["id"] for r in runs],
    }


def best(
    sweep: Mapping[str, Any],
    runs: Sequence[dict[str, Any]],
    *,
    metric: str | None = None,
    goal: str | None = None,
    aggregate: str = "mean",
) -> dict[str, Any]:
    """The best configuration, its runner-up and their paired comparison (BestError when no
    configuration has a counted run)."""
    metric = metric or default_metric(sweep.get("spec") or {}, runs)
    if metric not in METRICS:
        raise BestError(f"--metric: unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    if goal is not None and goal not in GOALS:
        raise BestError(f"--goal: must be min or max, got {goal!r}")
    if aggregate not in AGGREGATES:
        raise BestError(f"--aggregate: must be mean or median, got {aggregate!r}")
    goal = GOALS[goal] if goal else METRICS[metric]
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(config_key(run["config"]), []).append(run)
    swept = list(sweep.get("swept") or [])
    rows = []
    for key, members in groups.items():
        row = _config_row(members, metric, goal, aggregate)
        if row["value"] is None or math.isnan(row["value"]):
            continue
        params = {p: param_value(members[0]["config"], p) for p in swept}
        rows.append({"config_key": key, "params": params, **row})
    if not rows:
        raise BestError(
            f"sweep {sweep['id']} has no succeeded or diverged run yet to judge {metric} on"
        )
    sign = 1.0 if goal == "min" else -1.0
    rows.sort(key=lambda r: sign * r["value"])  # stable: ties keep the sweep's order
    winner, runner_up = rows[0], rows[1] if len(rows) > 1 else None
    return {
        "sweep_id": sweep["id"],
        "metric": metric,
        "goal": goal,
        "aggregate": aggregate,
        "configs": len(rows),
        "best": winner,
        "runner_up": runner_up,
        "comparison": _paired(groups, winner, runner_up, metric),
    }


def _paired(
    groups: Mapping[str, list[dict[str, Any]]],
    winner: Mapping[str, Any],
    runner_up: Mapping[str, Any] | None,
    metric: str,
) -> dict[str, Any] | None:
    """`compare`'s paired-by-seed statistics of the best (A) against the runner-up (B)."""
    if runner_up is None:
        return None
    try:
        result = cmp.compare(
            groups[winner["config_key"]], groups[runner_up["config_key"]], [metric]
        )
    except cmp.CompareError as exc:
        return {"pairs": 0, "metrics": [], "summary": [str(exc)]}
    return result


def lines(answer: Mapping[str, Any]) -> list[str]:
    """The answer in words, for the table format."""
    m, agg = answer["metric"], answer["aggregate"]

    def describe(row: Mapping[str, Any]) -> str:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "(the only one)"
        spread = f" ± {row['sd']:.4g} sd" if row["sd"] is not None else ""
        extra = f", {row['diverged']} diverged" if row["diverged"] else ""
        extra += f", {row['pending']} still pending" if row["pending"] else ""
        return (
            f"{params}: {agg} {m} {row['value']:.6g}{spread} over {row['counted']} of "
            f"{row['seeds']} seeds (range {_num(row['min'])} to {_num(row['max'])}{extra})"
        )

    out = [
        f"best of {answer['configs']} configuration(s) of sweep {answer['sweep_id']} by "
        f"{agg} {m} ({'lowest' if answer['goal'] == 'min' else 'highest'} wins):",
        f"  best:      {describe(answer['best'])}",
    ]
    if answer["runner_up"] is not None:
        out.append(f"  runner-up: {describe(answer['runner_up'])}")
        out.append("A = best, B = runner-up, paired by seed:")
        out.extend(f"  {line}" for line in answer["comparison"]["summary"])
    return out


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


__all__ = ["AGGREGATES", "GOALS", "METRICS", "BestError", "best", "default_metric", "lines"]
