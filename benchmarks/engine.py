"""Single-network training speed: bplab vs scikit-learn's MLP vs PyTorch (CPU, float64, float32).

Run by hand (not in CI):
    python benchmarks/engine.py [--repeats 5] [--pop-repeats 9] [--quick] [--only single|population]
        [--dtype float64|float32|both]

Workloads (issue 3):
  W1 XOR 2-2-1, full batch          W2 symmetry 6-2-1 (64 patterns), full batch
  W3 digits 64-32-10, batch 32      W4 synthetic 20,000 x 784, 784-256-10, batch 128
Every library gets one BLAS thread, the same dtype, SGD with momentum 0.9, no early
stopping, the same cost (cross-entropy: scikit-learn's MLPClassifier has no other).
Each workload runs in float64 and in float32 (rows marked f32, issue 22): bplab with
``dtype: float32``, PyTorch with float32 layers and data, scikit-learn on float32 data
(it trains in its input's dtype); the data are cast before the clock starts.
Reported: the best epochs/s of the repeats, the libraries taking turns, and the ratio
bplab / peer.

Work per epoch: bplab's default per-epoch metrics (epoch_metrics=exact) describe
the net *after* the epoch, so with mini-batches it runs one extra forward pass over
the training set per epoch; scikit-learn and a usual PyTorch loop report the
running mean of the batch losses instead, as bplab's epoch_metrics=running does.
Ratios compare like with like: "running" against scikit-learn and PyTorch, the
default against "torch+eval", PyTorch with the same extra pass.

Population (issue 8): K = 256 networks of one shape trained at once by
``engine.train_population`` vs the same networks trained one after another by
``engine.train``; per-network throughput (network-epochs/s) and the ratio, on
P1 XOR 2-2-1 and P2 symmetry 6-2-1, full batch, the paper's sse and sigmoid units,
learning rates spread over the members, no callbacks on either side; best rates of
alternating repeats (see ``population_row``). The run also checks that the members' final
weights equal the single runs' bit for bit.

Results go to benchmarks/results/engine.json.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path and its name
# would shadow the engine package: look from the repository root instead.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
sys.path.insert(0, os.path.dirname(_here))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from benchmarks.engine_population import POPULATION, population_row  # noqa: E402
from engine import Network, TrainConfig, load_dataset, train  # noqa: E402


def workloads(quick: bool, dtype: str = "float64") -> list[dict]:
    """The workloads, their data cast to ``dtype`` (names marked f32 in float32)."""
    rows = _workloads(quick)
    for w in rows:
        w["dtype"] = dtype
        w["X"], w["Y"] = w["X"].astype(dtype), w["Y"].astype(dtype)
        w["name"] += " f32" if dtype == "float32" else ""
    return rows


def _workloads(quick: bool) -> list[dict]:
    xor, sym = load_dataset("xor"), load_dataset("symmetry:6")
    digits = load_dataset("digits")
    rng = np.random.default_rng(0)
    X4 = rng.uniform(0, 1, size=(20_000, 784))
    Y4 = np.eye(10)[rng.integers(0, 10, 20_000)]
    q = 10 if quick else 1
    return [
        dict(
            name="W1 xor 2-2-1 full",
            X=xor.X,
            Y=xor.Y,
            sizes=[2, 2, 1],
            hidden="sigmoid",
            lr=0.5,
            batch=None,
            epochs=10_000 // q,
        ),
        dict(
            name="W2 symmetry 6-2-1 full",
            X=sym.X,
            Y=sym.Y,
            sizes=[6, 2, 1],
            hidden="sigmoid",
            lr=0.1,
            batch=None,
            epochs=5_000 // q,
        ),
        dict(
            name="W3 digits 64-32-10 b32",
            X=digits.X,
            Y=digits.Y,
            sizes=[64, 32, 10],
            hidden="relu",
            lr=0.1,
            batch=32,
            epochs=max(2, 20 // q),
        ),
        dict(
            name="W4 784-256-10 b128",
            X=X4,
            Y=Y4,
            sizes=[784, 256, 10],
            hidden="relu",
            lr=0.01,
            batch=128,
            epochs=2 if not quick else 1,
        ),
    ]


def run_bplab(w: dict, seed: int, epoch_metrics: str = "exact") -> float:
    out = "sigmoid" if w["sizes"][-1] == 1 else "softmax"
    rng = np.random.default_rng(seed)
    net = Network(
        w["sizes"],
        activation=w["hidden"],
        output_activation=out,
        cost="cross_entropy",
        init="xavier",
        rng=rng,
        dtype=w["dtype"],
    )
    cfg = TrainConfig(
        learning_rate=w["lr"],
        momentum=0.9,
        batch_size=w["batch"],
        epochs=w["epochs"],
        epoch_metrics=epoch_metrics,
        dtype=w["dtype"],
    )
    seen = []
    t = time.perf_counter()
    train(net, w["X"], w["Y"], cfg, rng=rng, on_epoch=lambda e, m: seen.append(m["loss"]))
    return time.perf_counter() - t


def run_sklearn(w: dict, seed: int) -> float | None:
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    n = len(w["X"])
    y = w["Y"][:, 0].astype(int) if w["sizes"][-1] == 1 else w["Y"].argmax(axis=1)
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(w["sizes"][1:-1]),
        activation="logistic" if w["hidden"] == "sigmoid" else w["hidden"],
        solver="sgd",
        learning_rate="constant",
        learning_rate_init=w["lr"],
        momentum=0.9,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=w["batch"] or n,
        max_iter=w["epochs"],
        tol=0.0,
        n_iter_no_change=w["epochs"] + 1,
        early_stopping=False,
        shuffle=w["batch"] is not None,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        clf.fit(w["X"], y)
        return time.perf_counter() - t


def run_torch(w: dict, seed: int, evaluate: bool) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    X = torch.from_numpy(w["X"])
    single = w["sizes"][-1] == 1
    Y = torch.from_numpy(w["Y"]) if single else torch.from_numpy(w["Y"].argmax(axis=1))
    layers: list = []
    dtype = torch.float32 if w["dtype"] == "float32" else torch.float64
    for a, b in zip(w["sizes"][:-1], w["sizes"][1:], strict=True):
        layers += [
            torch.nn.Linear(a, b, dtype=dtype),
            torch.nn.Sigmoid() if w["hidden"] == "sigmoid" else torch.nn.ReLU(),
        ]
    model = torch.nn.Sequential(*layers[:-1])
    loss_fn = torch.nn.BCEWithLogitsLoss() if single else torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=0.9)
    n, batch = len(X), w["batch"]
    gen = torch.Generator().manual_seed(seed)
    losses = []
    t = time.perf_counter()
    for _ in range(w["epochs"]):
        if batch is None:
            opt.zero_grad()
            loss = loss_fn(model(X), Y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        else:
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(0, n, batch):
                idx = perm[s : s + batch]
                opt.zero_grad()
                loss = loss_fn(model(X[idx]), Y[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            losses.append(total / n)
        if evaluate and batch is not None:
            with torch.no_grad():
                losses.append(loss_fn(model(X), Y).item())
    return time.perf_counter() - t


def best_times(runners: dict, repeats: int) -> dict[str, float | None]:
    """Seconds per library, best of ``repeats``, the libraries taking turns (seed by seed):
    this VM's speed moves by up to 3x within minutes, and a library timed in one stretch
    could get only its slow or only its fast moments (see ``population_row``)."""
    times: dict[str, list] = {lib: [] for lib in runners}
    for seed in range(repeats):
        for lib, fn in runners.items():
            times[lib].append(fn(seed))
    return {lib: None if ts[0] is None else min(ts) for lib, ts in times.items()}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the epochs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.json"))
    parser.add_argument("--only", choices=("single", "population"), default=None)
    parser.add_argument(
        "--dtype", choices=("float64", "float32", "both"), default="both",
        help="the single-network rows' dtype (population rows: float64)",
    )  # fmt: skip
    parser.add_argument("--members", type=int, default=256, help="K for the population rows")
    parser.add_argument(
        "--pop-repeats", type=int, default=9, help="alternating repeats of the population rows"
    )
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="also time the population rows with the member-major layout forced",
    )
    parser.add_argument(
        "--bplab-only",
        action="store_true",
        help="time bplab alone (no scikit-learn, no PyTorch): for before/after comparisons",
    )
    return parser.parse_args()


def _single_row(w: dict, args: argparse.Namespace) -> dict:
    """One single-network workload, bplab and its peers taking turns."""
    eps = {}
    runners = {"bplab": lambda s, w=w: run_bplab(w, s)}
    if not args.bplab_only:
        runners["sklearn"] = lambda s, w=w: run_sklearn(w, s)
        runners["torch"] = lambda s, w=w: run_torch(w, s, evaluate=False)
    if w["batch"] is not None:
        runners["bplab running"] = lambda s, w=w: run_bplab(w, s, "running")
        if not args.bplab_only:
            runners["torch+eval"] = lambda s, w=w: run_torch(w, s, evaluate=True)
    for lib, t in best_times(runners, args.repeats).items():
        eps[lib] = None if t is None else w["epochs"] / t
    return {
        "workload": w["name"],
        "epochs": w["epochs"],
        "epochs_per_s": eps,
        "ratio": {
            peer: eps[ours] / eps[peer]
            for peer, ours in _like_for_like(eps).items()
            if eps.get(peer) and eps.get(ours)
        },
    }


def main() -> None:
    args = _parse_args()
    rows: list[dict] = []
    pop_rows: list[dict] = []
    with threadpool_limits(limits=1):
        dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
        single = [w for d in dtypes for w in workloads(args.quick, d)]
        for w in single if args.only != "population" else []:
            row = _single_row(w, args)
            rows.append(row)
            print(_format(row), flush=True)
        for p in POPULATION if args.only != "single" else []:
            p = dict(p, epochs=p["epochs"] // (10 if args.quick else 1))
            row = population_row(
                p, args.members, singles=32, repeats=args.pop_repeats, layouts=args.layouts
            )
            pop_rows.append(row)
            if "layout_ratio" in row:
                print(
                    f"{row['workload']:26s} default layout / member-major forced: "
                    f"x{row['layout_ratio']:.2f} (medians x{row['layout_ratio_of_medians']:.2f})",
                    flush=True,
                )
            print(
                f"{row['workload']:26s} single {row['single_net_epochs_per_s']:10.0f}  "
                f"population(K={row['members']}) {row['population_net_epochs_per_s']:11.0f}  "
                f"(x{row['ratio']:.1f}; medians x{row['ratio_of_medians']:.1f}) net-epochs/s, "
                f"identical: {row['identical_to_single']}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "quick": args.quick,
        "dtypes": list(dtypes),
    }
    out.write_text(json.dumps({"meta": meta, "results": rows, "population": pop_rows}, indent=2))
    print(f"wrote {out}")


def _like_for_like(eps: dict) -> dict[str, str]:
    """Peer -> the bplab column doing the same work per epoch. scikit-learn and a plain
    PyTorch loop report the running mean of the batch losses, as bplab's
    epoch_metrics=running does; "torch+eval" evaluates the set after each epoch, as bplab's
    default (exact) does. With a full batch the two bplab modes do the same work."""
    running = "bplab running" if "bplab running" in eps else "bplab"
    return {"sklearn": running, "torch": running, "torch+eval": "bplab"}


def _format(row: dict) -> str:
    def f(v):
        return "    n/a" if v is None else f"{v:9.1f}"

    eps, ratio = row["epochs_per_s"], row["ratio"]
    parts = [f"{row['workload']:26s}", f"bplab {f(eps['bplab'])}"]
    if "bplab running" in eps:
        parts.append(f"running {f(eps['bplab running'])}")
    for lib in ("sklearn", "torch", "torch+eval"):
        if lib in eps:
            r = ratio.get(lib)
            parts.append(f"{lib} {f(eps[lib])} (x{r:.2f})" if r else f"{lib}    n/a")
    return "  ".join(parts) + "   epochs/s (bplab ratio)"


if __name__ == "__main__":
    main()
