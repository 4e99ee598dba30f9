"""What the run page shows: parameters, summary, curve, weights and hidden-unit values.

Weights and hidden values come from service.inspection, as `bplab inspect --hidden` prints
them; the curve is decimated in SQL like the sweep page's bands.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from engine import Dataset
from service.datasets import cached_dataset
from service.db import dashboard_queries as dq
from service.db import repository as repo
from service.inspection import hidden_rows, layer_weights, unit_names
from service.networks import network_with_weights
from service.records import RUN_FIELDS
from service.web.errors import NotFoundError
from service.web.sweep_data import finite_list

# A dataset of thousands of patterns would make a page nobody reads: show the first ones.
MAX_PATTERNS = 256


def run_header(session: Session, run_id: int) -> dict[str, Any]:
    """The run's fields and parameters and its sweep's name; NotFoundError if none."""
    row = repo.get_run(session, run_id) if 0 < run_id < 2**31 else None
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist")
    sweep = repo.get_sweep(session, row.sweep_id)
    record = {name: getattr(row, name) for name in RUN_FIELDS}
    record.update(
        config=dict(row.config),
        sweep_name=sweep.name if sweep is not None else "",
        started_at=row.started_at,
        finished_at=row.finished_at,
        live=row.status in ("queued", "running"),
    )
    return record


def network_view(session: Session, run: dict[str, Any]) -> dict[str, Any]:
    """Each layer's weights (for heat maps) and every pattern's hidden values, or why not."""
    try:
        arrays = repo.load_weights(session, run["id"])
    except repo.NotFound:
        return {"note": f"no stored weights (status {run['status']}; only finished runs have)"}
    except repo.BlobError as exc:
        return {"note": f"the stored weights cannot be read: {exc}"}
    config = run["config"]
    net = network_with_weights(config, arrays)
    dataset = _dataset(config.get("dataset", ""))
    names = unit_names(net, dataset)
    layers = []
    for lw in layer_weights(net, names):
        values = [abs(w) for row in lw.weights for w in row if w is not None and math.isfinite(w)]
        layers.append(
            {
                "index": lw.index,
                "name": lw.name,
                "sources": lw.sources,
                "targets": lw.targets,
                "weights": lw.weights,
                "scale": max(values, default=0.0) or 1.0,
            }
        )
    view: dict[str, Any] = {"layers": layers, "layer_sizes": list(net.layer_sizes)}
    if dataset is None:
        view["note"] = f"dataset {config.get('dataset')!r} cannot be read; no hidden values"
        return view
    rows = hidden_rows(net, dataset, names)
    view["patterns"] = rows[:MAX_PATTERNS]
    view["patterns_total"] = len(rows)
    view["pattern_columns"] = list(rows[0]) if rows else []
    return view


def _dataset(name: str) -> Dataset | None:
    try:
        return cached_dataset(name)
    except (ValueError, OSError, KeyError):
        return None


def run_curve(
    session: Session, run: dict[str, Any], metric: str, *, after: int = 0, points: int = 600
) -> dict[str, Any]:
    """One metric of a run, decimated to about ``points`` epochs, epochs after ``after``."""
    budget = dq.max_epochs(session, [run["id"]])
    width = max(1, math.ceil(budget / max(1, points)))
    rows = dq.decimated_epochs(session, [run["id"]], metric, width, after=after)
    values = np.array([math.nan if v is None else v for _, _, v in rows], dtype=float)
    return {
        "metric": metric,
        "width": width,
        "max_epochs": budget,
        "after": after,
        "epochs": [e for _, e, _ in rows],
        "values": finite_list(values),
        "status": run["status"],
        "live": run["live"],
    }
