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
    """Runs that finish the moment they are submitted (the overhead measurement). Their own
    write (what a worker would record) is timed apart: it is not the driver's."""

    def __init__(self, url: str) -> None:
        self.url, self.slots = url, 1
        self.wall_s = self.cpu_s = 0.0

    def submit(self, run_ids: list[int]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        stmt = text(
            "UPDATE runs SET status = 'succeeded', epochs_run = epochs,"
            " final_loss = (learning_rate - 0.5) * (learning_rate - 0.5) + momentum"
            " WHERE id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        with session_scope(self.url) as s:
            s.execute(stmt, {"ids": run_ids})
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu

    def wait(self, timeout: float) -> None:
        pass

    def close(self, *, interrupted: bool) -> None:
        pass


OVERHEAD_SPEC = {
    "dataset": "xor",
    "method": "tpe",
    "seeds": 1,
    "parameters": {
        "learning_rate": {"distribution": "uniform", "min": 0.01, "max": 1.0},
        "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.9},
    },
}


def _driver_once(n: int) -> dict[str, float]:
    """One search of n configurations through the driver (SQLite); seconds spent."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'o.db'}"
        spec = parse_spec({**OVERHEAD_SPEC, "run_cap": n})
        with session_scope(url) as s:
            sweep_id = create_sweep_from_spec(s, spec, backend="local")
        runs = Instant(url)
        wall, cpu = time.perf_counter(), time.process_time()
        Driver(sweep_id, runs, url=url, poll_s=0.0).run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        with session_scope(url, readonly=True) as s:
            assert len(db.list_trials(s, sweep_id)) == n
        dispose_engines(url)
    return {"wall": wall, "cpu": cpu, "runs_wall": runs.wall_s, "runs_cpu": runs.cpu_s}


def _optuna_once(n: int) -> dict[str, float]:
    """Optuna's own study.optimize, same sampler and objective, in memory; seconds."""
    study = optuna.create_study(sampler=make_sampler("tpe", 0))
    wall, cpu = time.perf_counter(), time.process_time()
    study.optimize(
        lambda t: (
            (t.suggest_float("learning_rate", 0.01, 1.0) - 0.5) ** 2
            + t.suggest_float("momentum", 0.0, 0.9)
        ),
        n_trials=n,
    )
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def overhead(n: int = 100, rounds: int = 5) -> dict[str, dict[str, float]]:
    """ms per configuration, medians over rounds of driver then Optuna (interleaved, so
    that a machine whose load drifts weighs on both alike). overhead: the driver's time
    less its runs' own write and less study.optimize's time, paired round by round."""
    samples: dict[str, dict[str, list[float]]] = {"cpu": {}, "wall": {}}
    for _ in range(rounds):
        d, o = _driver_once(n), _optuna_once(n)
        for clock in ("cpu", "wall"):
            row = {
                "driver": d[clock],
                "runs_write": d[f"runs_{clock}"],
                "optuna_optimize": o[clock],
                "overhead": d[clock] - d[f"runs_{clock}"] - o[clock],
            }
            for key, seconds in row.items():
                samples[clock].setdefault(key, []).append(1000 * seconds / n)
    return {
        clock: {key: float(np.median(v)) for key, v in by_key.items()}
        for clock, by_key in samples.items()
    }


def print_overhead(figures: dict[str, dict[str, float]]) -> None:
    print("driver overhead, ms per configuration (median of rounds; TPE, SQLite, 100 configs)")
    print(f"{'clock':6} {'driver':>8} {'runs write':>11} {'optimize':>9} {'overhead':>9}")
    for clock, f in figures.items():
        print(
            f"{clock:6} {f['driver']:8.2f} {f['runs_write']:11.2f}"
            f" {f['optuna_optimize']:9.2f} {f['overhead']:9.2f}"
        )


def reached(curves: list[list[float]], target: float) -> float | None:
    """Configurations the mean curve needs to reach ``target`` (None: never)."""
    mean = np.mean(np.array(curves, dtype=float), axis=0)
    hits = np.nonzero(mean <= target)[0]
    return int(hits[0]) + 1 if hits.size else None


def print_landscapes(out: dict) -> None:
    """Best mean objective after k configurations per method, averaged over sampler seeds,
    and where each method reaches random's best after all its configurations."""
    for name in LANDSCAPES:
        methods = {k.split("/")[1]: v for k, v in out.items() if k.startswith(f"{name}/")}
        if not methods:
            continue
        marks = sorted({int(k) for m in methods.values() for k in m["best_after"]})
        target = None
        if "random" in methods:
            target = float(np.mean([c[-1] for c in methods["random"]["curves"]]))
        print(f"\n{name}: mean best {LANDSCAPES[name].get('metric', 'final_loss')} after k")
        print(
            f"{'method':8}" + "".join(f"{f'k={k}':>11}" for k in marks) + "  reaches random's best"
        )
        for method, m in methods.items():
            cells = "".join(
                f"{m['best_after'].get(str(k), m['best_after'].get(k)):11.4g}" for k in marks
            )
            at = reached(m["curves"], target) if target is not None else None
            print(f"{method:8}{cells}  {'never' if at is None else f'at k={at}'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=100)
    ap.add_argument("--sampler-seeds", type=int, default=5)
    ap.add_argument("--landscapes", default="symmetry,digits")
    ap.add_argument("--methods", default="random,tpe,gp")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--overhead-only", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="overhead: driver/Optuna pairs")
    ap.add_argument("--summarize", metavar="JSON", help="print the tables of an earlier run")
    args = ap.parse_args()
    if args.summarize:
        out = json.loads(Path(args.summarize).read_text())
        print_overhead(out["overhead"]) if "cpu" in out["overhead"] else print(out["overhead"])
        print_landscapes(out)
        return
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    out: dict = {"args": vars(args), "overhead": overhead(rounds=args.rounds)}
    print_overhead(out["overhead"])
    if args.overhead_only:
        (results / "search_overhead.json").write_text(json.dumps(out, indent=1))
        return
    for landscape in args.landscapes.split(","):
        for method in args.methods.split(","):
            curves = []
            for seed in range(args.sampler_seeds):
                start = time.perf_counter()
                curves.append(search_curve(landscape, method, seed, args.configs, args.workers))
                took = time.perf_counter() - start
                print(f"  {landscape} {method} sampler_seed {seed}: {took:.0f} s", flush=True)
            mean = np.mean(np.array(curves, dtype=float), axis=0)
            marks = {k: float(mean[k - 1]) for k in (10, 20, 40, 60, 100) if k <= len(mean)}
            out[f"{landscape}/{method}"] = {"best_after": marks, "curves": curves}
            print(landscape, method, json.dumps(marks), flush=True)
            # written after every method: a long run stopped early keeps what it measured
            (results / "search.json").write_text(json.dumps(out, indent=1))
    print_landscapes(out)


if __name__ == "__main__":
    main()
