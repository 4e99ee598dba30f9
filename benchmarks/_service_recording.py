"""The recording part of benchmarks/service.py (run that script, not this module): the cost
per recorded epoch row of bplab, in fenced batches as the EpochRecorder writes them, vs
Optuna's ``trial.report`` per step, on the same database (PostgreSQL, then SQLite).

Imported by benchmarks/service.py before it fixes sys.path, as a top-level module.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

import _support


def _running_run(url: str) -> tuple[int, int]:
    """A sweep with one run, claimed: (run_id, attempt) ready for fenced writes."""
    from service.db import repository as repo
    from service.db.session import session_scope

    with session_scope(url) as s:
        sweep_id = repo.create_sweep(
            s,
            name=f"rec-{uuid.uuid4().hex[:6]}",
            dataset="xor",
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=[{"config": xor_config(), "seed": 0}],
        )
        run_id = repo.run_ids(s, sweep_id)[0]
    with session_scope(url) as s:
        attempt = repo.claim_run(s, run_id, "bench")
    assert attempt is not None
    return run_id, attempt


def xor_config() -> dict:
    """One XOR 2-2-1 run's configuration as a spec expands it (service.py's engine-only
    populations train it too)."""
    from service.spec import parse_spec

    spec = parse_spec({"name": "one", "dataset": "xor", "parameters": {"hidden": [2]}})
    return dict(spec.expand()[0].config)


def _rows(start: int, count: int) -> list[dict]:
    return [
        {"epoch": e, "loss": 1.0 / e, "accuracy": 0.75, "max_error": 0.4}
        for e in range(start, start + count)
    ]


def bplab_row_cost(url: str, batch: int, total: int, fused: bool) -> float:
    """Microseconds per epoch row: ``total`` rows in fenced batches of ``batch``."""
    from service.db import repository as repo
    from service.db.bulk import insert_epoch_rows_fenced
    from service.db.session import session_scope

    run_id, attempt = _running_run(url)
    batches = [_rows(1 + i, batch) for i in range(0, total, batch)]
    t = time.perf_counter()
    for rows in batches:
        with session_scope(url) as s:
            if fused:
                assert insert_epoch_rows_fenced(s.connection(), run_id, attempt, rows)
            else:
                repo.record_epochs(s, run_id, attempt, rows)
    return (time.perf_counter() - t) / total * 1e6


def optuna_costs(url: str, steps: int, trials: int) -> tuple[float, float]:
    """(us per trial.report step, ms per trial ask+tell) with Optuna's RDB storage at url."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name=f"bench-{uuid.uuid4().hex[:8]}")
    trial = study.ask()
    t = time.perf_counter()
    for step in range(steps):
        trial.report(1.0 / (step + 1), step)
    per_step = (time.perf_counter() - t) / steps * 1e6
    study.tell(trial, 0.0)
    t = time.perf_counter()
    for _ in range(trials):
        tr = study.ask()
        study.tell(tr, 1.0)
    per_trial = (time.perf_counter() - t) / trials * 1e3
    return per_step, per_trial


def recording(pg_url: str, total: int, steps: int) -> list[dict]:
    """Both on the same server: Optuna's tables in a database of their own beside bplab's
    (both keep an alembic_version table, so they cannot share one)."""
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        _support.pg_database("bplab_bench_optuna", migrate_schema=False) as optuna_pg,
    ):
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        optuna_sqlite = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        for name, url, optuna_url in (
            ("postgresql", pg_url, optuna_pg),
            ("sqlite", sqlite_url, optuna_sqlite),
        ):
            from service.db.session import session_scope

            with session_scope(url):
                pass  # SQLite: created and migrated on first use
            optuna_step, optuna_trial = optuna_costs(optuna_url, steps, trials=20)
            row = {"database": name, "optuna_us_per_step": optuna_step}
            row["optuna_ms_per_trial"] = optuna_trial
            for batch in (1000, 100):
                for fused in (False, True):
                    key = f"bplab_us_per_row_batch{batch}" + ("_fused" if fused else "")
                    row[key] = statistics.median(
                        bplab_row_cost(url, batch, total, fused) for _ in range(3)
                    )
            best = min(v for k, v in row.items() if k.startswith("bplab_us_per_row_batch1000"))
            row["ratio_optuna_step_over_bplab_row"] = optuna_step / best
            results.append(row)
            print(
                f"recording {name:10s}: optuna {optuna_step:8.0f} us/step "
                f"({optuna_trial:5.1f} ms/trial); bplab us/row, batches of 1000: "
                f"{row['bplab_us_per_row_batch1000']:.1f} (fused "
                f"{row['bplab_us_per_row_batch1000_fused']:.1f}), of 100: "
                f"{row['bplab_us_per_row_batch100']:.1f} (fused "
                f"{row['bplab_us_per_row_batch100_fused']:.1f}); "
                f"optuna/bplab x{row['ratio_optuna_step_over_bplab_row']:.0f}",
                flush=True,
            )
    return results
