"""Summarise a 1986-paper sweep the way the README's table reports it.

    BPLAB_DATABASE_URL=sqlite:///r1986.db python examples/rumelhart1986/summarize.py [SWEEP_ID]

Per configuration (the sweep's swept values): runs, how many solved (every output within
stop_within of its target: the paper's 0.8/0.2 rule at 0.2), the quartiles of sweeps to solve
over the solved seeds (and of presentations, sweeps x patterns, for per-pattern runs), and
time. With --patterns it also loads every run's final weights and counts, per run, the
training and held-out patterns that are right (the family-trees figures: how many of the
100 training and 4 held-out queries come out right), by two rules:

* the 0.8/0.2 rule: every output within 0.2 of its target (the paper's "right");
* the most active output: the output unit with the largest activity is one whose target
  is 1 (a query with two answers is right when the top unit is either of them).

Both sets are also counted by the 0.5 rule (every output on the right side of 0.5).
Prints JSON (one object per configuration) on standard output.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

import click
import numpy as np

from service.config import get_settings
from service.datasets import training_data
from service.db import repository as repo
from service.db.session import session_scope
from service.networks import network_from_config

TOLERANCE = 0.2  # the paper's on-units above 0.8, off-units below 0.2


def right_by_tolerance(net: Any, X: np.ndarray, Y: np.ndarray, tol: float = TOLERANCE) -> int:
    """How many patterns have every output within ``tol`` of its target."""
    if len(X) == 0:
        return 0
    return int((np.abs(net.forward(X) - Y).max(axis=1) < tol).sum())


def right_by_most_active(net: Any, X: np.ndarray, Y: np.ndarray) -> int:
    """How many patterns have their most active output on a unit whose target is 1."""
    if len(X) == 0:
        return 0
    top = net.forward(X).argmax(axis=1)
    return int((Y[np.arange(len(Y)), top] == 1.0).sum())


def _quartiles(values: list[int]) -> list[float] | None:
    if not values:
        return None
    return [float(q) for q in np.percentile(values, [25, 50, 75])]


def summarize(url: str, sweep_id: int | None = None, patterns: bool = False) -> list[dict]:
    """One dict per configuration of the sweep (the latest sweep when sweep_id is None)."""
    with session_scope(url) as session:
        if sweep_id is None:
            sweep_id = max(int(s["id"]) for s in repo.list_sweeps(session))
        sweep = repo.get_sweep(session, sweep_id)
        if sweep is None:
            raise click.ClickException(f"sweep {sweep_id} does not exist")
        swept = list(sweep.swept)
        timing = repo.sweep_timing(session, sweep_id)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        per_update: dict[str, int | None] = {}
        for run in repo.list_runs(session, sweep_id):
            key = json.dumps({p: run.config[p] for p in swept}, sort_keys=True)
            entry = {
                "status": run.status,
                "solved_epoch": run.solved_epoch,
                "epochs_run": run.epochs_run,
                "wall_time_s": run.wall_time_s,
            }
            if patterns and run.status == "succeeded":
                entry.update(_pattern_counts(session, run))
            groups[key].append(entry)
            per_update.setdefault(key, _patterns_per_sweep(run.config, int(run.seed)))
    out = []
    for key, runs in groups.items():
        solved = [r["solved_epoch"] for r in runs if r["solved_epoch"] is not None]
        walls = [r["wall_time_s"] for r in runs if r["wall_time_s"] is not None]
        row: dict[str, Any] = {
            "sweep_id": sweep_id,
            "config": json.loads(key),
            "runs": len(runs),
            "finished": sum(r["status"] in ("succeeded", "diverged") for r in runs),
            "solved": len(solved),
            "success_rate": len(solved) / len(runs),
            "sweeps_to_solve_q1_median_q3": _quartiles(solved),
            "slowest_solve": max(solved) if solved else None,
            "mean_run_wall_s": float(np.mean(walls)) if walls else None,
            "sweep_elapsed_s": timing["elapsed_s"],
        }
        n = per_update.get(key)
        if n is not None:  # one weight change per pattern: the chapter counts presentations
            row["patterns_per_sweep"] = n
            row["presentations_to_solve_q1_median_q3"] = _quartiles([s * n for s in solved])
        if patterns:
            row.update(_pattern_figures([r for r in runs if "train_right" in r]))
        out.append(row)
    return out


def _patterns_per_sweep(config: dict, seed: int) -> int | None:
    """Training patterns per sweep of a per-pattern run (batch_size 1), else None."""
    if config.get("batch_size") != 1:
        return None
    X, _, _ = training_data(dict(config), seed)
    return len(X)


def _pattern_figures(scored: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of training patterns right, and the held-out counts by both rules."""
    if not scored:
        return {}
    row: dict[str, Any] = {
        "train_patterns": scored[0]["train_patterns"],
        "train_right_median": float(np.median([r["train_right"] for r in scored])),
        "train_right_05_median": float(np.median([r["train_right_05"] for r in scored])),
    }
    held_out = scored[0]["test_patterns"]
    if held_out:
        row["test_patterns"] = held_out
        for rule in ("test_right", "test_right_05", "test_top"):
            counts = [r[rule] for r in scored]
            row[f"{rule}_mean"] = float(np.mean(counts))
            row[f"{rule}_histogram"] = {str(k): counts.count(k) for k in range(held_out + 1)}
    return row


def _pattern_counts(session: Any, run: Any) -> dict[str, int]:
    config = dict(run.config)
    X, Y, validation = training_data(config, int(run.seed))
    arrays = repo.load_weights(session, run.id)
    net = network_from_config(config, X.shape[1], Y.shape[1], np.random.default_rng(0))
    net.set_params(arrays)
    Xv, Yv = validation if validation is not None else (X[:0], Y[:0])
    return {
        "train_right": right_by_tolerance(net, X, Y),
        "train_right_05": right_by_tolerance(net, X, Y, 0.5),
        "train_patterns": len(X),
        "test_right": right_by_tolerance(net, Xv, Yv),
        "test_right_05": right_by_tolerance(net, Xv, Yv, 0.5),
        "test_top": right_by_most_active(net, Xv, Yv),
        "test_patterns": len(Xv),
    }


@click.command()
@click.argument("sweep_id", type=int, required=False)
@click.option(
    "--patterns", is_flag=True, help="Score every run's patterns (0.8/0.2 and most active output)."
)
def main(sweep_id: int | None, patterns: bool) -> None:
    url = get_settings().database_url
    json.dump(summarize(url, sweep_id, patterns), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
