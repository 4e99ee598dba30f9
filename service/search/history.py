"""A search in the order it tried things: one row per trial, its value and the best so far.

For grid and random sweeps (``order_configs``) the order is that of the configurations'
first runs, so that `bplab plot` can draw the same history for any sweep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from service.db import search as db
from service.results import param_value
from service.search.objective import better, outcome
from service.search.spec import MAXIMIZED, default_metric


def sweep_metric(spec: Mapping[str, Any]) -> dict[str, str]:
    """The metric a sweep is judged by: its spec's, else final loss (minimised, mean)."""
    metric = spec.get("metric")
    if isinstance(metric, Mapping):
        return dict(metric)
    return default_metric()


def trial_rows(session: Session, sweep_id: int, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per trial of a search: trial, the swept params, seeds, state, value, best."""
    metric = sweep_metric(spec)
    runs = db.config_runs(session, sweep_id, val_accuracy=metric["name"] == "val_accuracy")
    rows = []
    for t in db.list_trials(session, sweep_id):
        members = runs.get(t["config_key"], [])
        rows.append(_row(t["number"], members, metric, repeat_of=t["first_number"]))
    return with_best_so_far(rows, metric["goal"])


def order_configs(session: Session, sweep_id: int, spec: Mapping[str, Any]) -> list[dict]:
    """Grid and random sweeps: one row per configuration, in the order of its first run."""
    metric = sweep_metric(spec)
    runs = db.config_runs(session, sweep_id, val_accuracy=metric["name"] == "val_accuracy")
    ordered = sorted(runs.values(), key=lambda members: members[0]["id"])
    rows = [_row(i, members, metric) for i, members in enumerate(ordered)]
    return with_best_so_far(rows, metric["goal"])


def _row(
    number: int, members: Sequence[dict[str, Any]], metric: Mapping[str, str], repeat_of=None
) -> dict[str, Any]:
    result = outcome(members, metric)
    config = members[0]["config"] if members else {}
    return {
        "trial": number,
        "config": config,
        "seeds": len(members),
        "state": result.state,
        "value": result.value,
        "repeat_of": repeat_of,
        # seeds that diverged count as the worst value: `bplab plot` leaves them out
        "diverged": sum(1 for r in members if r["status"] == "diverged"),
    }


def with_best_so_far(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    best: float | None = None
    for row in rows:
        value = row["value"]
        if (
            value is not None
            and math.isfinite(value)
            and (best is None or better(value, best, goal))
        ):
            best = value
        row["best_so_far"] = best
    return rows


def display(rows: Sequence[dict[str, Any]], swept: Sequence[str], metric: Mapping[str, str]):
    """The rows for a terminal table and their columns."""
    name = f"{metric['aggregate']} {metric['name']}"
    shown = []
    for row in rows:
        item = {"trial": row["trial"]}
        item.update({p: param_value(row["config"], p) for p in swept})
        item["seeds"] = row["seeds"]
        item["state"] = row["state"] if row["repeat_of"] is None else f"= trial {row['repeat_of']}"
        item[name] = row["value"]
        item["best so far"] = row["best_so_far"]
        shown.append(item)
    return shown, ["trial", *swept, "seeds", "state", name, "best so far"]


def json_rows(rows: Sequence[dict[str, Any]], swept: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "trial": r["trial"],
            **{p: param_value(r["config"], p) for p in swept},
            "seeds": r["seeds"],
            "state": r["state"],
            "repeat_of": r["repeat_of"],
            "value": r["value"],
            "best_so_far": r["best_so_far"],
        }
        for r in rows
    ]


__all__ = ["MAXIMIZED", "display", "json_rows", "order_configs", "sweep_metric", "trial_rows"]
