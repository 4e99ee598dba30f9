"""Small helpers of the reliability tests: a sweep in the database, clocks moved back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from service.db import repository as repo
from service.db.session import session_scope


def xor_config(**overrides: Any) -> dict[str, Any]:
    from service.spec.parameters import DEFAULTS

    config = {k: v for k, v in DEFAULTS.items() if k not in ("input_groups", "group_hidden")}
    config.update({"dataset": "xor", "hidden": [2], "epochs": 300, "log_every": 7})
    config.update(overrides)
    return config


def make_sweep(url: str, n: int = 3, *, backend: str = "local", **overrides: Any) -> list[int]:
    """A sweep of n XOR runs (seeds 0..n-1); their ids."""
    config = xor_config(**overrides)
    with session_scope(url) as session:
        sweep_id = repo.create_sweep(
            session,
            name="t",
            dataset="xor",
            method="grid",
            spec={"dataset": "xor", "parameters": {}},
            swept=["learning_rate"],
            backend=backend,
            runs=[{"config": config, "seed": s} for s in range(n)],
        )
        return repo.run_ids(session, sweep_id)


def sweep_of(url: str, run_id: int) -> int:
    with session_scope(url) as session:
        return repo.get_run(session, run_id).sweep_id


def age(url: str, run_id: int, column: str, seconds: float) -> None:
    """Move a run's timestamp column ``seconds`` into the past (database time)."""
    with session_scope(url) as session:
        if session.get_bind().dialect.name == "postgresql":
            expr = f"statement_timestamp() - make_interval(secs => {seconds})"
        else:
            expr = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds} seconds')"
        session.execute(text(f"UPDATE runs SET {column} = {expr} WHERE id = :r"), {"r": run_id})


def state(url: str, run_id: int) -> dict[str, Any]:
    with session_scope(url) as session:
        row = session.execute(
            text(
                "SELECT status, attempt, retry_base, epochs_run, error, queued_at, "
                "(SELECT count(*) FROM epoch_metrics e WHERE e.run_id = r.id) AS rows, "
                "(SELECT count(*) FROM run_weights w WHERE w.run_id = r.id) AS weights, "
                "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.id) AS checkpoints "
                "FROM runs r WHERE id = :r"
            ),
            {"r": run_id},
        ).one()
        return dict(row._mapping)
