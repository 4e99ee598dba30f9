"""A sweep end to end, as a user waits for it: bplab (local pool, Celery), Optuna, scikit-learn.

Run by hand (not in CI; needs PostgreSQL and Redis on 127.0.0.1 except ``--only
bplab-local,optuna-sqlite,sklearn``):

    python benchmarks/sweep.py [--runs 64] [--epochs 3000] [--short-epochs 3] [--repeat 3]
        [--only bplab-local,bplab-celery,optuna-sqlite,optuna-postgresql,sklearn]

The sweep is issue 22's: ``--runs`` XOR 2-2-1 nets, full batch, ``--epochs`` epochs each, every
epoch recorded (8 learning rates x seeds, everything else bplab's defaults); then the same with
``--short-epochs`` epochs, which shows each contestant's fixed cost. Contestants:

* bplab-local: ``bplab sweep run SPEC -w 2`` in a fresh directory (the embedded default: a new
  SQLite file ``bplab.db``), a subprocess: interpreter start-up and imports included.
* bplab-celery: ``bplab sweep submit SPEC`` (a subprocess) to the last run finished, with 2
  worker processes (``bplab worker -c 2``) on a fresh migrated PostgreSQL database, started
  before the clock and warmed by a 4-run sweep (workers are long-lived); their start-up, to
  "ready", is reported apart.
* optuna-sqlite, optuna-postgresql: benchmarks/sweep_peers.py, the same configurations as
  trials of a GridSampler study, 2 processes each calling study.optimize on the shared storage
  (a new SQLite file; a new PostgreSQL database), ``trial.report`` after every epoch.
* sklearn: benchmarks/sweep_peers.py, the same nets trained bare with MLPClassifier in 2
  processes (joblib), nothing recorded.

Wall seconds, and CPU seconds of the processes each contestant starts (the subprocess and its
children; for Celery, the submit plus the workers' processes over the sweep). The database
servers' and Redis's CPU is not counted. The contestants take turns (A B C A B C, ``--repeat``
rounds); best and median of each are kept, with the load average before each turn (the machine
is shared). Throwaway databases and queues are removed; only processes started here are
stopped. Results go to benchmarks/results/sweep.json, rewritten after every round;
``--summarize JSON`` prints the tables of one (a run stopped early keeps its finished rounds).

Optuna is slow here: every ``trial.report`` is a transaction of its own, so at 3,000 epochs
each of its turns records 192,000 of them (about half an hour on SQLite on the 2-core test
machine). ``--only bplab-local,bplab-celery,sklearn`` repeats the fast contestants alone.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402
import sweep_peers  # noqa: E402

_support.fix_sys_path()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

# the slow ones last: a run stopped early keeps the others' turns
CONTESTANTS = ("bplab-local", "bplab-celery", "sklearn", "optuna-postgresql", "optuna-sqlite")
NEEDS_SERVERS = {"bplab-celery", "optuna-postgresql"}
PROCESSES = 2
PEERS = str(Path(__file__).resolve().parent / "sweep_peers.py")
# a user's shell has no bplab settings: the local contestant must get the embedded default
BPLAB_URL_VARS = ("BPLAB_DATABASE_URL", "BPLAB_BROKER_URL", "BPLAB_QUEUE")


def write_spec(path: Path, runs: int, epochs: int, name: str) -> Path:
    """The sweep in the embedded default's style: the swept values and epochs, nothing else
    (hidden [2], sse, full batch, momentum 0.9, init 0.3, log_every 1 are the defaults)."""
    pairs = sweep_peers.grid(runs)
    spec = {
        "name": name,
        "dataset": "xor",
        "seeds": len({seed for _, seed in pairs}),
        "parameters": {
            "learning_rate": sorted({lr for lr, _ in pairs}),
            "epochs": epochs,
        },
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class TurnFailed(RuntimeError):
    """A contestant's command failed: recorded as its turn, and the benchmark goes on."""


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def timed(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict:
    """Run one command to its end: wall seconds, CPU seconds of it and its children (all
    waited for), its standard output. A failure stops the benchmark with the command's log."""
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        # the root cause is near the top of a chained traceback, the wrapper at its end
        errors = dict.fromkeys(line for line in done.stderr.splitlines() if "Error" in line)
        raise TurnFailed(f"{' '.join(args)} exited {done.returncode}: {' | '.join(errors)}")
    return {"wall_s": wall, "cpu_s": cpu, "stdout": done.stdout}


def bplab_local(tmp: Path, runs: int, epochs: int) -> dict:
    home = tmp / f"local-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    spec = write_spec(home / "xor.yaml", runs, epochs, "xor-sweep")
    env = _support.child_env()
    for var in BPLAB_URL_VARS:
        env.pop(var, None)
    args = [*_support.bplab_cmd(), "sweep", "run", str(spec), "-w", str(PROCESSES)]
    out = timed(args, env, home, home / "sweep-run.log")
    assert (home / "bplab.db").exists(), "bplab sweep run did not use the embedded default"
    return {"wall_s": out["wall_s"], "cpu_s": out["cpu_s"]}


def _submit(spec: Path, url: str, queue: str, log: Path) -> tuple[int, dict]:
    env = _support.child_env(
        BPLAB_BROKER_URL=_support.REDIS_URL, BPLAB_DATABASE_URL=url, BPLAB_QUEUE=queue
    )
    out = timed([*_support.bplab_cmd(), "sweep", "submit", str(spec)], env, spec.parent, log)
    return int(out["stdout"].split()[0]), out


def bplab_celery(children: _support.Children, tmp: Path, runs: int, epochs: int) -> dict:
    """Workers started and warm first (start-up reported apart); then submit to last run."""
    queue = _support.unique_queue("sweepbench")
    with _support.pg_database("sweepbench_bplab") as url:
        log = tmp / f"worker-{queue}.log"
        started = time.perf_counter()
        proc = _support.start_bplab_worker(children, log, url, queue, PROCESSES)
        try:
            _support.wait_ready(log, proc)
            startup = time.perf_counter() - started
            warm = write_spec(tmp / f"warm-{queue}.yaml", 4, 3, "warm-up")
            warm_id, _ = _submit(warm, url, queue, tmp / f"warm-{queue}.log")
            _support.wait_finished(url, warm_id, timeout=300)
            spec = write_spec(tmp / f"xor-{queue}.yaml", runs, epochs, "xor-sweep")
            workers_cpu = _support.session_cpu_seconds(proc.pid)
            t = time.perf_counter()
            sweep_id, submit = _submit(spec, url, queue, tmp / f"submit-{queue}.log")
            counts = _support.wait_finished(url, sweep_id, timeout=3600)
            wall = time.perf_counter() - t
            workers_cpu = _support.session_cpu_seconds(proc.pid) - workers_cpu
        finally:
            children.stop(proc)
            _support.clear_queue(queue)
    assert counts.get("succeeded") == runs, counts
    return {
        "wall_s": wall,
        "cpu_s": submit["cpu_s"] + workers_cpu,
        "submit_s": submit["wall_s"],
        "worker_startup_s": startup,
    }


def optuna(tmp: Path, storage: str, runs: int, epochs: int) -> dict:
    with contextlib.ExitStack() as stack:
        if storage == "sqlite":
            url = f"sqlite:///{tmp / f'optuna-{uuid.uuid4().hex[:8]}.db'}"
        else:  # an empty database of its own: Optuna creates its tables, as on first use
            url = stack.enter_context(_support.pg_database("sweepbench_optuna", False))
        args = [sys.executable, PEERS, "optuna", url, "--runs", str(runs), "--epochs", str(epochs)]
        out = timed(args, _support.child_env(), tmp, tmp / f"optuna-{storage}.log")
    trials = int(out["stdout"].split()[1])
    return {"wall_s": out["wall_s"], "cpu_s": out["cpu_s"], "trials": trials}


def sklearn(tmp: Path, runs: int, epochs: int) -> dict:
    args = [sys.executable, PEERS, "sklearn", "--runs", str(runs), "--epochs", str(epochs)]
    out = timed(args, _support.child_env(), tmp, tmp / "sklearn.log")
    return {"wall_s": out["wall_s"], "cpu_s": out["cpu_s"]}


def one_turn(name: str, children: _support.Children, tmp: Path, runs: int, epochs: int) -> dict:
    load = os.getloadavg()[0]
    try:
        return {**_turn(name, children, tmp, runs, epochs), "load_before": load}
    except TurnFailed as exc:
        return {"failed": str(exc)[-4000:], "load_before": load}


def _turn(name: str, children: _support.Children, tmp: Path, runs: int, epochs: int) -> dict:
    if name == "bplab-local":
        out = bplab_local(tmp, runs, epochs)
    elif name == "bplab-celery":
        out = bplab_celery(children, tmp, runs, epochs)
    elif name.startswith("optuna-"):
        out = optuna(tmp, name.removeprefix("optuna-"), runs, epochs)
    else:
        out = sklearn(tmp, runs, epochs)
    return out


def summarise(turns: dict[str, list[dict]]) -> dict[str, dict]:
    """Best and median of each contestant's wall and CPU seconds, and the ratios of each to
    bplab's (best to best, median to median; above 1: slower than bplab)."""
    rows: dict[str, dict] = {}
    for name, all_turns in turns.items():
        ts = [t for t in all_turns if "failed" not in t]
        if not ts:
            continue
        row: dict = {"turns": all_turns}
        for key in ("wall_s", "cpu_s"):
            values = [t[key] for t in ts]
            row[f"best_{key}"], row[f"median_{key}"] = min(values), statistics.median(values)
        if name == "bplab-celery":
            row["median_worker_startup_s"] = statistics.median(t["worker_startup_s"] for t in ts)
            row["median_submit_s"] = statistics.median(t["submit_s"] for t in ts)
        rows[name] = row
    for row in rows.values():
        for base in ("bplab-local", "bplab-celery"):
            if base in rows:
                for stat in ("best", "median"):
                    key = f"{stat}_wall_s"
                    row[f"{stat}_wall_over_{base}"] = row[key] / rows[base][key]
    return rows


def print_table(epochs: int, runs: int, rows: dict[str, dict]) -> None:
    print(f"\n{runs} XOR 2-2-1 nets x {epochs} epochs, every epoch recorded (sklearn: none)")
    print(
        f"{'contestant':18} {'wall best':>9} {'median':>7} {'CPU best':>9} {'median':>7}"
        f" {'x local':>8} {'x celery':>9}  loads before each turn"
    )
    for name, r in rows.items():
        ratios = [
            f"{r[f'best_wall_over_{b}']:.2f}" if f"best_wall_over_{b}" in r else "-"
            for b in ("bplab-local", "bplab-celery")
        ]
        loads = ", ".join(f"{t['load_before']:.1f}" for t in r["turns"])
        print(
            f"{name:18} {r['best_wall_s']:9.2f} {r['median_wall_s']:7.2f} {r['best_cpu_s']:9.2f}"
            f" {r['median_cpu_s']:7.2f} {ratios[0]:>8} {ratios[1]:>9}  {loads}"
        )
    if "bplab-celery" in rows:
        c = rows["bplab-celery"]
        print(
            f"bplab-celery: workers started and warm before the clock (start-up to ready, "
            f"median {c['median_worker_startup_s']:.2f} s); `bplab sweep submit` itself "
            f"median {c['median_submit_s']:.2f} s of its wall time"
        )
    for name, r in rows.items():
        for t in r["turns"]:
            if "failed" in t:
                print(f"{name}: a turn failed (not in the figures): {t['failed'][:300]}")
    for name in ("optuna-sqlite", "optuna-postgresql"):
        if name in rows:
            extra = [t.get("trials", runs) - runs for t in rows[name]["turns"]]
            if any(extra):
                print(f"{name}: GridSampler ran duplicate trials per turn: {extra}")


def print_marginal(results: dict, sweeps: list[int], runs: int, printed: bool) -> None:
    """What each net-epoch costs beyond the fixed cost: the difference between the two sweeps'
    best (and median) wall seconds over the epochs they differ by (one recorded row each,
    but for sklearn). It carries a short sweep's figures to a longer one."""
    more, fewer = max(sweeps), min(sweeps)
    long, short = results[f"epochs_{more}"], results[f"epochs_{fewer}"]
    extra = runs * (more - fewer)
    if printed:
        print(f"\nper net-epoch beyond the fixed cost, us of wall ({more} - {fewer} epochs):")
    for name in [n for n in long if n in short]:
        figures = {
            stat: (long[name][f"{stat}_wall_s"] - short[name][f"{stat}_wall_s"]) / extra * 1e6
            for stat in ("best", "median")
        }
        long[name]["marginal_us_per_net_epoch"] = figures
        if printed:
            print(f"  {name:18} best {figures['best']:8.1f}   median {figures['median']:8.1f}")


def summarize(path: Path) -> None:
    """The tables of an earlier run's JSON (one stopped early has the rounds it finished)."""
    import json

    saved = json.loads(path.read_text())
    sweeps = [int(k.removeprefix("epochs_")) for k in saved if k.startswith("epochs_")]
    for epochs in sweeps:
        print_table(epochs, saved["args"]["runs"], saved[f"epochs_{epochs}"])
    if len(sweeps) == 2:
        print_marginal(
            {f"epochs_{e}": saved[f"epochs_{e}"] for e in sweeps},
            sweeps,
            saved["args"]["runs"],
            printed=True,
        )
    meta = saved["meta"]
    print(f"written {meta['when']}, load average then {meta['load_average_1_5_15']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3000)
    ap.add_argument("--short-epochs", type=int, default=3, help="the fixed-cost sweep; 0: none")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of turns")
    ap.add_argument("--only", default=",".join(CONTESTANTS), help="comma-separated contestants")
    ap.add_argument("--out", default=None)
    ap.add_argument("--summarize", metavar="JSON", help="print the tables of an earlier run")
    args = ap.parse_args()
    if args.summarize:
        summarize(Path(args.summarize))
        return
    only = [c for c in args.only.split(",") if c]
    if unknown := set(only) - set(CONTESTANTS):
        ap.error(f"unknown contestants {sorted(unknown)}; choose from {', '.join(CONTESTANTS)}")
    # the short sweep first: every contestant's fixed cost is known within minutes
    sweeps = [e for e in (args.short_epochs, args.epochs) if e > 0]
    turns: dict[int, dict[str, list[dict]]] = {e: {c: [] for c in only} for e in sweeps}
    children = _support.Children()
    try:
        with tempfile.TemporaryDirectory(prefix="sweepbench-") as tmpdir:
            for round_no in range(1, args.repeat + 1):
                for epochs in sweeps:
                    for name in only:
                        turn = one_turn(name, children, Path(tmpdir), args.runs, epochs)
                        turns[epochs][name].append(turn)
                        print(
                            f"round {round_no}, {epochs} epochs, {name}: {_said(turn)}", flush=True
                        )
                        report(turns, args, printed=False)
    finally:
        children.stop_all()
    report(turns, args, printed=True)


def _said(turn: dict) -> str:
    if "failed" in turn:
        return f"FAILED (load {turn['load_before']:.1f}): {turn['failed']}"
    return (
        f"{turn['wall_s']:.2f} s wall, {turn['cpu_s']:.2f} s CPU (load {turn['load_before']:.1f})"
    )


def report(
    turns: dict[int, dict[str, list[dict]]], args: argparse.Namespace, printed: bool
) -> None:
    """Summaries of the turns so far to the JSON file (after every round: a long run stopped
    early keeps what it measured); the tables too when ``printed``."""
    sweeps = [e for e in turns if any(turns[e].values())]
    results = {f"epochs_{e}": summarise(turns[e]) for e in sweeps}
    if printed:
        for e in sweeps:
            print_table(e, args.runs, results[f"epochs_{e}"])
    if len(sweeps) == 2:
        print_marginal(results, sweeps, args.runs, printed)
    path = _support.write_json("sweep.json", {"args": vars(args), **results}, args.out)
    if printed:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average now (1, 5, 15 min): {load}\nwrote {path}")


if __name__ == "__main__":
    main()
