"""Sweeps recorded straight from a spec and trained by the one executor, in this process."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from service.db import repository as repo
from service.db.models import EpochMetric, PrunedConfig, Run
from service.db.session import session_scope
from service.execution import execute_runs
from service.spec import parse_spec

# XOR 2-2-1: after 10 epochs the small learning rates are clearly behind; 4.0 solves it.
LEARNING_RATES = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 4.0]


def xor_spec(early_terminate: dict[str, Any] | None, *, seeds: int = 3, epochs: int = 300) -> Any:
    data: dict[str, Any] = {
        "name": "prune",
        "dataset": "xor",
        "seeds": seeds,
        "parameters": {
            "learning_rate": LEARNING_RATES,
            "momentum": 0.9,
            "hidden": 2,
            "epochs": epochs,
        },
    }
    if early_terminate is not None:
        data["early_terminate"] = early_terminate
    return parse_spec(data)


def record(url: str, spec: Any) -> tuple[int, list[int]]:
    with session_scope(url) as s:
        sweep_id = repo.create_sweep(
            s,
            name=spec.name,
            dataset=spec.dataset,
            method=spec.method,
            spec=spec.spec_dict,
            swept=list(spec.swept),
            backend="local",
            runs=[{"config": r.config, "seed": r.seed} for r in spec.expand()],
        )
        return sweep_id, repo.run_ids(s, sweep_id)


def train(url: str, spec: Any) -> tuple[int, list[int]]:
    sweep_id, ids = record(url, spec)
    execute_runs(ids, url=url)
    return sweep_id, ids


def runs(url: str, sweep_id: int) -> list[dict[str, Any]]:
    cols = (
        "id",
        "config_key",
        "learning_rate",
        "seed",
        "status",
        "epochs_run",
        "final_loss",
        "pruned_epoch",
        "pruned_value",
        "pruned_threshold",
        "prune_exempt",
    )
    with session_scope(url, readonly=True) as s:
        rows = s.execute(
            select(*(getattr(Run, c) for c in cols))
            .where(Run.sweep_id == sweep_id)
            .order_by(Run.id)
        )
        return [dict(zip(cols, row, strict=True)) for row in rows]


def epoch_rows(url: str, run_id: int) -> list[tuple]:
    with session_scope(url, readonly=True) as s:
        return [
            (r.epoch, r.loss, r.accuracy, r.max_error)
            for r in s.scalars(
                select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
            )
        ]


def pruned_configs(url: str, sweep_id: int) -> dict[str, int]:
    with session_scope(url, readonly=True) as s:
        q = select(PrunedConfig.config_key, PrunedConfig.epoch).where(
            PrunedConfig.sweep_id == sweep_id
        )
        return {k: e for k, e in s.execute(q)}


def best_rate(rows: list[dict[str, Any]]) -> float:
    """The learning rate with the lowest mean final loss over its seeds, among those that
    trained to the end."""
    by: dict[float, list[float]] = {}
    for r in rows:
        if r["status"] == "succeeded":
            by.setdefault(r["learning_rate"], []).append(r["final_loss"])
    return min(by, key=lambda lr: float(np.mean(by[lr])))
