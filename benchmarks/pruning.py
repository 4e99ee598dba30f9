"""Early stopping (issue 15): epochs, wall time and best configuration with each rule.

Two grids, each trained for real by bplab's one executor (service.execution, in this
process: one worker, so the pruned set is deterministic) on a fresh SQLite database:

- symmetry 6-H-1: learning rate x momentum x hidden, 5 seeds, loss;
- digits 64-H-10: learning rate x hidden x cost, 3 seeds, val_loss (20% held out).

For none, median, asha and hyperband (unit: config, mean over seeds): the epochs trained
(summed over runs), the wall time, and the best configuration by mean final metric over
its seeds among the configurations trained to the end. Beside them, Optuna's
SuccessiveHalvingPruner on the same grid (GridSampler over configuration x seed, the same
nets, seeds and data; one trial per run, judged alone, as Optuna does), reporting at the
same rungs. The goal: at most a third of the full grid's epochs, same best configuration.

    python benchmarks/pruning.py [--grids symmetry,digits] [--epochs-scale 1.0] [-o out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/service.py would shadow the service package when run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sqlalchemy import select  # noqa: E402

from service.db import repository as repo  # noqa: E402
from service.db.migrate import upgrade_engine  # noqa: E402
from service.db.models import Run  # noqa: E402
from service.db.session import dispose_engines, make_engine, session_scope  # noqa: E402
from service.execution import execute_runs  # noqa: E402
from service.spec import parse_spec  # noqa: E402

GRIDS: dict[str, dict[str, Any]] = {
    "symmetry": {
        "dataset": "symmetry:6",
        "seeds": 5,
        "metric": "loss",
        "min_epochs": 50,
        "parameters": {
            "learning_rate": [0.1, 0.3, 1.0, 3.0],
            "momentum": [0.0, 0.5, 0.9],
            "hidden": [1, 2, 3],
            "epochs": 1500,
            "init": 0.3,
            "log_every": 10,
        },
    },
    "digits": {
        "dataset": "digits",
        "seeds": 3,
        "metric": "val_loss",
        "min_epochs": 5,
        "parameters": {
            "learning_rate": [0.003, 0.01, 0.03, 0.1],
            "hidden": [8, 32],
            "cost": ["cross_entropy", "sse"],
            "activation": "tanh",
            "output_activation": "softmax",
            "init": "xavier",
            "momentum": 0.9,
            "batch_size": 32,
            "epochs": 30,
            "validation_split": 0.2,
        },
    },
}
RULES = ("none", "median", "asha", "hyperband")
SWEPT = {
    "symmetry": ("learning_rate", "momentum", "hidden"),
    "digits": ("learning_rate", "hidden", "cost"),
}


def rule_for(kind: str, grid: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "none":
        return None
    rule: dict[str, Any] = {
        "type": kind,
        "metric": grid["metric"],
        "min_epochs": grid["min_epochs"],
    }
    if kind == "hyperband":
        rule["brackets"] = 2
    return rule


def spec_of(name: str, grid: dict[str, Any], rule: dict[str, Any] | None, scale: float) -> Any:
    params = dict(grid["parameters"])
    params["epochs"] = max(2, int(params["epochs"] * scale))
    data: dict[str, Any] = {
        "name": f"{name}-{rule['type'] if rule else 'none'}",
        "dataset": grid["dataset"],
        "seeds": grid["seeds"],
        "parameters": params,
    }
    if rule is not None:
        data["early_terminate"] = rule
    return parse_spec(data)


def label(config: dict[str, Any], name: str) -> str:
    return " ".join(f"{k}={config[k]}" for k in SWEPT[name])


def best_config(finals: dict[str, list[float]]) -> tuple[str, float]:
    """The configuration with the lowest mean final metric over its seeds (a diverged seed
    counts as infinitely bad)."""
    means = {
        k: float(np.mean([v if math.isfinite(v) else math.inf for v in vs]))
        for k, vs in finals.items()
    }
    key = min(means, key=lambda k: means[k])
    return key, means[key]


def run_bplab(name: str, kind: str, scale: float, workdir: Path) -> dict[str, Any]:
    grid = GRIDS[name]
    spec = spec_of(name, grid, rule_for(kind, grid), scale)
    url = f"sqlite:///{workdir / f'{name}-{kind}.db'}"
    upgrade_engine(make_engine(url))
    with session_scope(url) as s:
        sweep_id = repo.create_sweep(
            s,
            name=spec.name,
            dataset=spec.dataset,
            method="grid",
            spec=spec.spec_dict,
            swept=list(spec.swept),
            backend="local",
            runs=[{"config": r.config, "seed": r.seed} for r in spec.expand()],
        )
        ids = repo.run_ids(s, sweep_id)
    t0 = time.perf_counter()
    execute_runs(ids, url=url)
    wall = time.perf_counter() - t0
    column = "final_loss" if grid["metric"] == "loss" else "val_loss"
    with session_scope(url, readonly=True) as s:
        rows = s.execute(
            select(Run.config, Run.status, Run.epochs_run, getattr(Run, column)).where(
                Run.sweep_id == sweep_id
            )
        ).all()
    dispose_engines(url)
    finals: dict[str, list[float]] = {}
    pruned: set[str] = set()
    for config, status, _epochs, value in rows:
        key = label(config, name)
        if status == "pruned":
            pruned.add(key)
        elif status in ("succeeded", "diverged"):
            finals.setdefault(key, []).append(math.inf if value is None else float(value))
    complete = {k: v for k, v in finals.items() if k not in pruned and len(v) == grid["seeds"]}
    best, value = best_config(complete)
    return {
        "grid": name,
        "rule": kind,
        "runs": len(rows),
        "epochs": int(sum(e or 0 for _c, _s, e, _v in rows)),
        "wall_s": round(wall, 2),
        "configs_kept": len(complete),
        "best": best,
        "best_value": value,
    }


def run_optuna(name: str, scale: float) -> dict[str, Any]:
    """Optuna's SuccessiveHalvingPruner, one trial per (configuration, seed)."""
    import optuna

    from engine import StopTraining, TrainConfig, train
    from service.datasets import training_data
    from service.networks import network_from_config

    grid = GRIDS[name]
    spec = spec_of(name, grid, None, scale)
    configs = spec.configs()
    seeds = list(spec.seeds)
    eta, first = 3, grid["min_epochs"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.GridSampler(
        {"config": list(range(len(configs))), "seed": seeds}, seed=0
    )
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=eta)
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    trained = {"epochs": 0}
    finals: dict[str, list[float]] = {}
    pruned: set[str] = set()
    key = "loss" if grid["metric"] == "loss" else "val_loss"

    def objective(trial: optuna.Trial) -> float:
        config = configs[trial.suggest_categorical("config", list(range(len(configs))))]
        seed = trial.suggest_categorical("seed", seeds)
        X, Y, validation = training_data(config, seed)
        rng = np.random.default_rng(seed)
        net = network_from_config(config, X.shape[1], Y.shape[1], rng)
        cut = {"pruned": False}

        def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
            trained["epochs"] += 1
            if epoch < first or not _is_rung(epoch, first, eta):
                return
            value = float(metrics[key])
            trial.report(value if math.isfinite(value) else 1e300, epoch)
            if trial.should_prune():
                cut["pruned"] = True
                raise StopTraining

        history = train(
            net,
            X,
            Y,
            TrainConfig.from_dict(config),
            rng=rng,
            on_epoch=on_epoch,
            validation=validation,
        )
        if cut["pruned"]:
            pruned.add(label(config, name))
            raise optuna.TrialPruned
        value = float(getattr(history, key)[-1])
        finals.setdefault(label(config, name), []).append(value)
        return value if math.isfinite(value) else 1e300

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=len(configs) * len(seeds))
    wall = time.perf_counter() - t0
    complete = {k: v for k, v in finals.items() if len(v) == len(seeds)}
    best, value = best_config(complete) if complete else ("(none complete)", math.nan)
    return {
        "grid": name,
        "rule": "optuna-sha",
        "runs": len(configs) * len(seeds),
        "epochs": trained["epochs"],
        "wall_s": round(wall, 2),
        "configs_kept": len(complete),
        "best": best,
        "best_value": value,
    }


def _is_rung(epoch: int, first: int, eta: int) -> bool:
    e = first
    while e < epoch:
        e *= eta
    return e == epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="symmetry,digits")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="scale every grid's epochs")
    parser.add_argument("--no-optuna", action="store_true")
    parser.add_argument("-o", "--output", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.grids.split(","):
            for kind in RULES:
                results.append(run_bplab(name, kind, args.epochs_scale, Path(tmp)))
                _print(results[-1], results)
            if not args.no_optuna:
                results.append(run_optuna(name, args.epochs_scale))
                _print(results[-1], results)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))


def _print(row: dict[str, Any], results: list[dict[str, Any]]) -> None:
    full = next(r for r in results if r["grid"] == row["grid"] and r["rule"] == "none")
    share = row["epochs"] / full["epochs"] if full["epochs"] else 1.0
    same = "same best" if row["best"] == full["best"] else "OTHER BEST"
    print(
        f"{row['grid']:9} {row['rule']:11} epochs {row['epochs']:>9,} ({share:4.0%})"
        f"  wall {row['wall_s']:7.1f} s  kept {row['configs_kept']:3}  best {row['best']}"
        f" ({row['best_value']:.4g}) {same}",
        flush=True,
    )


if __name__ == "__main__":
    main()
