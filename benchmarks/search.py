"""Model-based search (issue 16): best objective against configurations tried, and overhead.

1. Landscapes, trained for real through bplab's driver and local pool (SQLite, one process
   per core): symmetry 6-2-1 (log learning rate, momentum, hidden 1-8, 3 seeds) and digits
   64-H-10 (learning rate, hidden, weight decay). For random, tpe and gp, the best mean final
   loss after k configurations, averaged over the sampler seeds.
2. Driver overhead per configuration: the driver (ask, record trial and runs, tell, one
   lease renewal per look, on SQLite) with runs that "finish" instantly, against Optuna's
   own study.optimize with the same sampler and an objective of the same cost (none).

    python benchmarks/search.py [--configs 100] [--sampler-seeds 5] [--landscapes symmetry,digits]
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/service.py would shadow the service package when run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from sqlalchemy import bindparam, text  # noqa: E402

from service.db import search as db  # noqa: E402
from service.db.session import dispose_engines, session_scope  # noqa: E402
from service.search.backends import LocalBackend  # noqa: E402
from service.search.driver import Driver  # noqa: E402
from service.search.history import trial_rows  # noqa: E402
from service.search.study import make_sampler  # noqa: E402
from service.spec import parse_spec  # noqa: E402
from service.sweeps import create_sweep_from_spec  # noqa: E402

LANDSCAPES = {
    "symmetry": {
        "dataset": "symmetry:6",
        "seeds": 3,
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": 0.01, "max": 3.0},
            "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.95},
            "hidden": {"distribution": "int_uniform", "min": 1, "max": 8},
            "epochs": 1000,
        },
    },
    "digits": {
        "dataset": "digits",
        "seeds": 2,
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": 0.001, "max": 1.0},
            "hidden": {"distribution": "int_uniform", "min": 4, "max": 64},
            "weight_decay": {"distribution": "log_uniform", "min": 1e-6, "max": 1e-2},
            "output_activation": "softmax",
            "cost": "cross_entropy",
            "batch_size": 32,
            "epochs": 20,
        },
    },
}


def search_curve(landscape: str, method: str, seed: int, configs: int, workers: int) -> list:
    """Best-so-far mean final loss after each configuration of one search."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        # random is not an adaptive method of the spec: run the same driver with Optuna's
        # RandomSampler in tpe's place, so both go through the same code
        import service.search.study as study

        study.make_sampler = _sampler_for(method)
        raw = {**LANDSCAPES[landscape], "name": landscape}
        raw["method"] = "tpe" if method == "random" else method
        raw.update(run_cap=configs, sampler_seed=seed)
        spec = parse_spec(raw)
        with session_scope(url) as s:
            sweep_id = create_sweep_from_spec(s, spec, backend="local")
        Driver(sweep_id, LocalBackend(workers, url), url=url).run()
        with session_scope(url, readonly=True) as s:
            rows = trial_rows(s, sweep_id, spec.spec_dict)
        dispose_engines(url)
    return [r["best_so_far"] for r in rows]


_MAKE_SAMPLER = make_sampler


def _sampler_for(method: str):  # noqa: ANN202
    def make(name: str, seed: int):  # noqa: ANN202
        return _MAKE_SAMPLER("random" if method == "random" and name == "tpe" else name, seed)

    return make


class Instant:
    """Runs that finish the moment they are submitted (the overhead measurement)."""

    def __init__(self, url: str) -> None:
        self.url, self.slots = url, 1

    def submit(self, run_ids: list[int]) -> None:
        stmt = text(
            "UPDATE runs SET status = 'succeeded', epochs_run = epochs,"
            " final_loss = (learning_rate - 0.5) * (learning_rate - 0.5) + momentum"
            " WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        with session_scope(self.url) as s:
            s.execute(stmt, {"ids": run_ids})

    def wait(self, timeout: float) -> None:
        pass

    def close(self, *, interrupted: bool) -> None:
        pass


def overhead(n: int = 100) -> dict[str, float]:
    raw = {
        "dataset": "xor",
        "method": "tpe",
        "run_cap": n,
        "seeds": 1,
        "parameters": {
            "learning_rate": {"distribution": "uniform", "min": 0.01, "max": 1.0},
            "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.9},
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'o.db'}"
        spec = parse_spec(raw)
        with session_scope(url) as s:
            sweep_id = create_sweep_from_spec(s, spec, backend="local")
        start = time.perf_counter()
        Driver(sweep_id, Instant(url), url=url, poll_s=0.0).run()
        driver_s = time.perf_counter() - start
        with session_scope(url, readonly=True) as s:
            assert len(db.list_trials(s, sweep_id)) == n
        dispose_engines(url)
    study = optuna.create_study(sampler=make_sampler("tpe", 0))
    start = time.perf_counter()
    study.optimize(
        lambda t: (
            (t.suggest_float("learning_rate", 0.01, 1.0) - 0.5) ** 2
            + t.suggest_float("momentum", 0.0, 0.9)
        ),
        n_trials=n,
    )
    optuna_s = time.perf_counter() - start
    return {
        "driver_ms_per_config": 1000 * driver_s / n,
        "optuna_optimize_ms_per_config": 1000 * optuna_s / n,
        "overhead_ms_per_config": 1000 * (driver_s - optuna_s) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=100)
    ap.add_argument("--sampler-seeds", type=int, default=5)
    ap.add_argument("--landscapes", default="symmetry,digits")
    ap.add_argument("--methods", default="random,tpe,gp")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out: dict = {"args": vars(args), "overhead": overhead()}
    print(json.dumps(out["overhead"]))
    for landscape in args.landscapes.split(","):
        for method in args.methods.split(","):
            curves = [
                search_curve(landscape, method, seed, args.configs, args.workers)
                for seed in range(args.sampler_seeds)
            ]
            mean = np.mean(np.array(curves, dtype=float), axis=0)
            marks = {k: float(mean[k - 1]) for k in (10, 20, 40, 60, 100) if k <= len(mean)}
            out[f"{landscape}/{method}"] = {"best_after": marks, "curves": curves}
            print(landscape, method, json.dumps(marks), flush=True)
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "search.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
