"""The peers of benchmarks/sweep.py, each a script a user would write, run in a fresh interpreter.

    python benchmarks/sweep_peers.py optuna STORAGE_URL --runs 64 --epochs 3000
    python benchmarks/sweep_peers.py sklearn --runs 64 --epochs 3000

Both train the sweep's configurations: the learning rates of ``grid(runs)`` x seeds 0..k-1, an
XOR 2-2-1 sigmoid net, full batch, momentum 0.9, in 2 processes.

* optuna: one study in STORAGE_URL (SQLite file or PostgreSQL) with a GridSampler over the
  same learning rates and seeds, and 2 processes (spawned: each a fresh interpreter; Optuna's
  documented way of parallelising is several processes calling study.optimize on a shared
  storage) running it until the sampler stops the study. (enqueue_trial, the other way, hands
  one waiting trial to both processes on SQLite, which has no row locks: Trial#N "has already
  finished and can not be updated".) Each trial trains with a plain NumPy loop, the same net
  and update as bplab's defaults (sigmoid units, E = 1/2 sum (o - t)^2, weights
  uniform(-0.3, 0.3), gradient descent with momentum 0.9, not bplab's numbers), and calls
  ``trial.report(loss, epoch)`` after every epoch: the rows bplab records with log_every 1.
  No pruning is asked (should_prune is not called).
* sklearn: the same nets trained bare with MLPClassifier (logistic hidden and output units,
  as the 2-2-1 net; its cost is log-loss, it has no SSE), max_iter epochs, nothing recorded,
  in 2 processes (joblib, loky): the floor of "no service at all".

It imports nothing of bplab: its start-up is the peer's own.
"""

from __future__ import annotations

import argparse
import math
import sys

PROCESSES = 2
LEARNING_RATES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def grid(runs: int) -> list[tuple[float, int]]:
    """``runs`` (learning rate, seed) pairs: as many learning rates as divide ``runs`` (at most
    8) times seeds 0..runs/that-1. benchmarks/sweep.py writes bplab's spec from the same grid."""
    n_lr = max(d for d in range(1, len(LEARNING_RATES) + 1) if runs % d == 0)
    return [(lr, seed) for lr in LEARNING_RATES[:n_lr] for seed in range(runs // n_lr)]


def train_xor(learning_rate: float, seed: int, epochs: int, report=None) -> float:  # noqa: ANN001
    """XOR 2-2-1, full batch, the generalised delta rule with momentum 0.9; the last epoch's
    loss. ``report(loss, epoch)`` is called after every epoch when given."""
    import numpy as np

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    T = np.array([[0.0], [1.0], [1.0], [0.0]])
    rng = np.random.default_rng(seed)
    W1, b1 = rng.uniform(-0.3, 0.3, (2, 2)), rng.uniform(-0.3, 0.3, 2)
    W2, b2 = rng.uniform(-0.3, 0.3, (2, 1)), rng.uniform(-0.3, 0.3, 1)
    params = [W1, b1, W2, b2]
    steps = [np.zeros_like(p) for p in params]
    loss = math.nan
    for epoch in range(1, epochs + 1):
        H = 1.0 / (1.0 + np.exp(-(X @ W1 + b1)))
        O = 1.0 / (1.0 + np.exp(-(H @ W2 + b2)))
        loss = 0.5 * float(((O - T) ** 2).sum())
        d_out = (O - T) * O * (1.0 - O)
        d_hid = (d_out @ W2.T) * H * (1.0 - H)
        grads = [X.T @ d_hid, d_hid.sum(0), H.T @ d_out, d_out.sum(0)]
        for p, step, g in zip(params, steps, grads, strict=True):
            step *= 0.9
            step -= learning_rate * g
            p += step
        if report is not None:
            report(loss, epoch)
    return loss


def _search_space(runs: int) -> dict[str, list]:
    pairs = grid(runs)
    return {
        "learning_rate": sorted({lr for lr, _ in pairs}),
        "seed": sorted({seed for _, seed in pairs}),
    }


def _storage(url: str):  # noqa: ANN202
    """Optuna's RDBStorage; on SQLite with a 60 s busy timeout, as a user soon learns to: with
    the default 5 s, two processes reporting every epoch of a 3,000-epoch sweep made a trial
    FAIL (StorageInternalError on commit) under this machine's load, and its process stop."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _optuna_worker(storage_url: str, study_name: str, runs: int, epochs: int) -> int:
    """One of the processes: study.optimize until the grid's sampler stops the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = _search_space(runs)
    sampler = optuna.samplers.GridSampler(space, seed=0)
    study = optuna.load_study(study_name=study_name, storage=_storage(storage_url), sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_categorical("learning_rate", space["learning_rate"])
        seed = trial.suggest_categorical("seed", space["seed"])
        return train_xor(lr, seed, epochs, trial.report)

    study.optimize(objective)  # GridSampler stops the study once every point has been run
    return len(study.trials)


def run_optuna(storage_url: str, runs: int, epochs: int) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=_storage(storage_url), study_name="xor-sweep")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
        jobs = [
            pool.submit(_optuna_worker, storage_url, "xor-sweep", runs, epochs)
            for _ in range(PROCESSES)
        ]
        [job.result() for job in jobs]
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    points = {(t.params["learning_rate"], t.params["seed"]) for t in done}
    if len(points) != runs:
        sys.exit(f"{len(points)} grid points complete, expected {runs}")
    # the processes pick unvisited grid points independently: near the end both may take
    # the same one (GridSampler's documented behaviour when distributed)
    print(f"trials {len(done)} (duplicates {len(done) - runs}); best loss {study.best_value:.4g}")


def _sklearn_one(learning_rate: float, seed: int, epochs: int) -> float:
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    clf = MLPClassifier(
        hidden_layer_sizes=(2,),
        activation="logistic",
        solver="sgd",
        learning_rate="constant",
        learning_rate_init=learning_rate,
        momentum=0.9,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=4,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        shuffle=False,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return float(clf.loss_)


def run_sklearn(runs: int, epochs: int) -> None:
    from joblib import Parallel, delayed

    losses = Parallel(n_jobs=PROCESSES)(
        delayed(_sklearn_one)(lr, seed, epochs) for lr, seed in grid(runs)
    )
    print(f"{len(losses)} nets trained; best loss {min(losses):.4g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("peer", choices=("optuna", "sklearn"))
    ap.add_argument("storage", nargs="?", help="optuna: the storage URL")
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3000)
    args = ap.parse_args()
    if args.peer == "optuna":
        if not args.storage:
            ap.error("optuna needs a storage URL")
        run_optuna(args.storage, args.runs, args.epochs)
    else:
        run_sklearn(args.runs, args.epochs)


if __name__ == "__main__":
    main()
