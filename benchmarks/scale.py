"""Scale: submitting 1,000 and 10,000 runs, database size, worker memory over 10,000 runs.

Run by hand (not in CI; needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379):

    python benchmarks/scale.py [--runs 10000] [--epochs 100] [--skip-training]

1. Submit an XOR sweep of 1,000 and of ``--runs`` runs: validate the spec, write the sweep
   and its runs, publish the tasks; timed in-process step by step, and as a whole through
   the real `bplab sweep submit` command (a fresh interpreter: imports included). Goal:
   10,000 runs in <= 5 s. Database size (pg_database_size) before and after each.
2. Two worker processes (`bplab worker -c 2`) train the ``--runs``-run sweep
   (``--epochs`` epochs each, log_every 10) while the resident memory of the worker and its
   pool processes is sampled; it must stay flat (no growth with the number of runs done).
   Database size after training, per run.

Throwaway PostgreSQL database and unique Redis queues, removed at the end; only processes
started here are stopped. Results go to benchmarks/results/scale.json.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402

_support.fix_sys_path()

import argparse  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402


def xor_spec(path: Path, runs: int, epochs: int, name: str) -> Path:
    """``runs`` = 10 seeds x learning rates x momenta (``runs`` a multiple of 10)."""
    per = max(1, runs // 10)
    lrs = max(d for d in range(1, int(per**0.5) + 1) if per % d == 0)
    spec = {
        "name": name,
        "dataset": "xor",
        "method": "grid",
        "seeds": 10,
        "parameters": {
            "learning_rate": [round(0.1 + 0.01 * i, 4) for i in range(lrs)],
            "momentum": [round(0.9 * i / (per // lrs), 5) for i in range(per // lrs)],
            "hidden": [2],
            "epochs": epochs,
            "log_every": 10,
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def submit_in_process(spec_path: Path, url: str, queue: str) -> dict:
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.dispatch import publish_groups
    from service.grouping import SUBMIT_MIN_TASKS, group_run_ids
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    t0 = time.perf_counter()
    spec = load_spec(spec_path, max_runs=1_000_000)
    t1 = time.perf_counter()
    with session_scope(url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
        run_ids = repo.run_ids(session, sweep_id)
        groups = group_run_ids(session, run_ids, min_groups=SUBMIT_MIN_TASKS)
    t2 = time.perf_counter()
    publish_groups(groups, _support.REDIS_URL, queue=queue)
    t3 = time.perf_counter()
    return {
        "sweep_id": sweep_id,
        "runs": len(run_ids),
        "tasks": len(groups),
        "validate_s": t1 - t0,
        "write_s": t2 - t1,
        "publish_s": t3 - t2,
        "total_s": t3 - t0,
    }


def submit_cli(spec_path: Path, url: str, queue: str) -> tuple[float, int]:
    """Wall time of `bplab sweep submit` (a new process) and the sweep id it prints."""
    env = _support.child_env(
        BPLAB_DATABASE_URL=url, BPLAB_BROKER_URL=_support.REDIS_URL, BPLAB_QUEUE=queue
    )
    t = time.perf_counter()
    out = subprocess.run(
        [*_support.bplab_cmd(), "sweep", "submit", str(spec_path), "--max-runs", "1000000"],
        env=env,
        cwd=_support.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t, int(out.stdout.strip().splitlines()[-1])


def rss_of_group(pgid: int) -> dict[int, int]:
    """Resident set size (bytes) of every process in a process group."""
    sizes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[int(entry.name)] = int(line.split()[1]) * 1024
        except (OSError, ProcessLookupError):
            continue
    return sizes


def done_count(url: str, sweep_id: int) -> tuple[int, dict[str, int]]:
    from service.db import repository as repo
    from service.db.session import session_scope

    with session_scope(url) as s:
        counts = repo.status_counts(s, sweep_id)
    return sum(v for k, v in counts.items() if k not in ("queued", "running")), counts


def train_and_watch(
    children: _support.Children, tmp: Path, url: str, queue: str, sweep_id: int, runs: int
) -> dict:
    env = _support.child_env(
        BPLAB_BROKER_URL=_support.REDIS_URL, BPLAB_DATABASE_URL=url, BPLAB_QUEUE=queue
    )
    log = tmp / "worker.log"
    proc = children.start(
        [*_support.bplab_cmd(), "worker", "-c", "2", "-Q", queue, "-l", "WARNING"], env, log
    )
    samples = []
    t = time.perf_counter()
    try:
        while True:
            done, counts = done_count(url, sweep_id)
            rss = rss_of_group(proc.pid)
            samples.append(
                {"s": time.perf_counter() - t, "done": done, "rss_total": sum(rss.values())}
                | {"rss_max_process": max(rss.values(), default=0)}
            )
            if done >= runs:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {log}")
            time.sleep(1.0)
    finally:
        children.stop(proc)
    elapsed = time.perf_counter() - t
    # flat: compare the memory once 10% of the runs are done with the memory at the end
    warm = next((s for s in samples if s["done"] >= runs // 10), samples[0])
    end = samples[-1]
    return {
        "elapsed_s": elapsed,
        "statuses": counts,
        "rss_warm_bytes": warm["rss_total"],
        "rss_end_bytes": end["rss_total"],
        "rss_growth_ratio": end["rss_total"] / warm["rss_total"] if warm["rss_total"] else None,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    results: dict = {"submit": []}
    children = _support.Children()
    queues = []
    try:
        with tempfile.TemporaryDirectory() as tmpdir, _support.pg_database() as url:
            tmp = Path(tmpdir)
            size0 = _support.database_size(url)
            results["db_bytes_empty"] = size0
            train_queue = _support.unique_queue()
            queues.append(train_queue)
            train_sweep = None
            for n in sorted({1000, args.runs}):
                q = train_queue if n == args.runs else _support.unique_queue()
                queues.append(q)
                before = _support.database_size(url)
                spec = xor_spec(tmp / f"xor{n}.yaml", n, args.epochs, f"scale-{n}")
                row = submit_in_process(spec, url, q)
                row["db_bytes_added"] = _support.database_size(url) - before
                cli_q = _support.unique_queue()
                queues.append(cli_q)
                row["cli_submit_s"], _ = submit_cli(spec, url, cli_q)
                _support.clear_queue(cli_q)
                results["submit"].append(row)
                if n == args.runs:
                    train_sweep = row["sweep_id"]
                print(
                    f"submit {n:6d} runs: validate {row['validate_s']:.2f} s, write "
                    f"{row['write_s']:.2f} s, publish {row['publish_s']:.2f} s = "
                    f"{row['total_s']:.2f} s in-process; `bplab sweep submit` "
                    f"{row['cli_submit_s']:.2f} s; +{row['db_bytes_added'] / 1e6:.1f} MB "
                    f"({row['db_bytes_added'] / n:.0f} B/run)",
                    flush=True,
                )
            if not args.skip_training and train_sweep is not None:
                before = _support.database_size(url)
                res = train_and_watch(children, tmp, url, train_queue, train_sweep, args.runs)
                res["db_bytes_added"] = _support.database_size(url) - before
                res["db_bytes_per_run"] = res["db_bytes_added"] / args.runs
                results["training"] = res
                print(
                    f"trained {args.runs} runs x {args.epochs} epochs with 2 worker processes "
                    f"in {res['elapsed_s']:.1f} s; worker RSS {res['rss_warm_bytes'] / 1e6:.0f}"
                    f" MB at 10% -> {res['rss_end_bytes'] / 1e6:.0f} MB at the end "
                    f"(x{res['rss_growth_ratio']:.2f}); +{res['db_bytes_added'] / 1e6:.1f} MB "
                    f"({res['db_bytes_per_run'] / 1e3:.1f} kB/run)",
                    flush=True,
                )
    finally:
        children.stop_all()
        for q in queues:
            _support.clear_queue(q)
    path = _support.write_json("scale.json", {"args": vars(args), **results}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
