"""`bplab sql` (read-only, enforced by the database) and the run_summary/config_summary views,
on SQLite and PostgreSQL alike."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import inspect, select, update

from service.db import migrate
from service.db.models import Run
from service.db.session import get_engine, make_engine, session_scope
from tests.cli.conftest import Bplab
from tests.results.conftest import SMALL_SPEC, run_sweep

pytestmark = pytest.mark.timeout(120)

VIEWS = {"run_summary", "config_summary"}
PARAMS = (
    "learning_rate",
    "momentum",
    "hidden",
    "cost",
    "activation",
    "output_activation",
    "optimizer",
    "batch_size",
    "weight_decay",
    "init",
    "epochs",
    "dataset",
)


@pytest.fixture
def swept(db_url: str, tmp_path: Path) -> tuple[Bplab, int]:
    bplab = Bplab(db_url, tmp_path)
    return bplab, run_sweep(bplab, SMALL_SPEC)


def _snapshot(url: str) -> dict:
    """Everything a write could change, read through an ordinary connection."""
    with get_engine(url).connect() as conn:
        return {
            "tables": sorted(inspect(conn).get_table_names()),
            "views": sorted(VIEWS & set(inspect(conn).get_view_names())),
            "runs": conn.execute(select(Run.id, Run.seed, Run.status, Run.final_loss)).all(),
            "counts": [
                conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                for t in ("sweeps", "runs", "epoch_metrics", "run_weights")
            ],
        }


WRITES = [
    "INSERT INTO sweeps (name, dataset, method, spec, swept, n_runs, backend)"
    " VALUES ('x', 'xor', 'grid', '{}', '[]', 0, 'local')",
    "UPDATE runs SET seed = seed + 100",
    "DELETE FROM epoch_metrics",
    "DROP TABLE run_weights",
    "DROP VIEW run_summary",
    "CREATE TABLE intruder (a INTEGER)",
    "SELECT 1; DELETE FROM runs",
    "COMMIT; DELETE FROM runs",
]


def test_sql_refuses_every_write_and_nothing_changes(swept) -> None:
    bplab, _ = swept
    before = _snapshot(bplab.url)
    assert before["counts"][1] == 6 and before["views"] == sorted(VIEWS)
    for statement in WRITES:
        result = bplab("sql", statement, expect=2)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: sql: "), result.output
    assert _snapshot(bplab.url) == before
    # Reading still works afterwards.
    assert bplab.json("sql", "SELECT COUNT(*) AS n FROM runs") == [{"n": 6}]


def test_sql_prints_rows_and_nan_as_nan(swept) -> None:
    bplab, sid = swept
    runs = bplab.json("runs", str(sid))
    nan_run = runs[0]["id"]
    with session_scope(bplab.url) as s:
        s.execute(update(Run).where(Run.id == nan_run).values(final_loss=math.nan))
    rows = bplab.json("sql", "SELECT run_id, seed, final_loss FROM run_summary ORDER BY run_id")
    assert [r["run_id"] for r in rows] == sorted(r["id"] for r in runs)
    assert rows[0]["final_loss"] == "NaN"
    assert rows[1]["final_loss"] == pytest.approx(runs[1]["final_loss"])
    table = bplab("sql", f"SELECT final_loss FROM runs WHERE id = {nan_run}").stdout
    assert "NaN" in table
    csv_out = bplab("sql", "SELECT id, 100 % 7 AS m FROM runs ORDER BY id", "--format", "csv")
    assert csv_out.stdout.splitlines()[:2] == ["id,m", f"{runs[0]['id']},2"]
    assert "nope" in bplab("sql", "SELECT * FROM nope", expect=2).output  # the database's error


def test_views_agree_with_bplab_results(swept) -> None:
    bplab, sid = swept
    runs = bplab.json("runs", str(sid))
    fast = sorted(r["id"] for r in runs if r["params"]["learning_rate"] == 2.0)
    slow = sorted(r["id"] for r in runs if r["params"]["learning_rate"] == 0.5)
    with session_scope(bplab.url) as s:
        # A NaN loss (must be skipped by AVG/MIN on both databases, not read as 0)...
        s.execute(update(Run).where(Run.id == fast[0]).values(final_loss=math.nan))
        # ...and a run back in the queue (pending: not in the success rate's denominator).
        s.execute(
            update(Run)
            .where(Run.id == slow[0])
            .values(status="queued", final_loss=None, best_loss=None, solved_epoch=None)
        )
    runs = {r["id"]: r for r in bplab.json("runs", str(sid))}

    summary = bplab.json("sql", "SELECT * FROM run_summary ORDER BY run_id")
    assert [r["run_id"] for r in summary] == sorted(runs)
    for row in summary:
        run = runs[row["run_id"]]
        assert row["sweep_id"] == sid and row["sweep_name"] == "small"
        assert (row["status"], row["seed"]) == (run["status"], run["seed"])
        assert row["learning_rate"] == run["params"]["learning_rate"]
        assert row["hidden"] == "2" and row["init"] == "0.3" and row["batch_size"] is None
        assert row["epochs_run"] == run["epochs_run"]
        assert row["solved_epoch"] == run["solved_epoch"]
        assert set(PARAMS) <= set(row)

    configs = bplab.json("sql", "SELECT * FROM config_summary ORDER BY learning_rate")
    results = {r["learning_rate"]: r for r in bplab.json("results", str(sid))}
    assert [c["learning_rate"] for c in configs] == [0.5, 2.0]
    for c in configs:
        r = results[c["learning_rate"]]
        mine = [x for x in runs.values() if x["params"]["learning_rate"] == c["learning_rate"]]
        assert c["sweep_id"] == sid and set(PARAMS) <= set(c)
        assert c["n_runs"] == r["seeds"] == 3
        assert (c["n_succeeded"], c["n_pending"]) == (r["succeeded"], r["pending"])
        assert c["n_diverged"] == c["n_failed"] == c["n_cancelled"] == 0
        assert c["avg_final_loss"] == pytest.approx(r["final_loss_mean"], rel=1e-12)
        assert c["min_best_loss"] == pytest.approx(r["best_loss"], rel=1e-12)
        assert c["avg_accuracy"] == pytest.approx(r["accuracy_mean"], rel=1e-12)
        solved = [x["solved_epoch"] for x in mine if x["solved_epoch"] is not None]
        assert c["n_solved"] == len(solved)
        assert isinstance(c["success_rate"], float)  # no integer division on either database
        assert c["success_rate"] == pytest.approx(r["success_rate"])
        if solved:
            assert c["avg_solved_epoch"] == pytest.approx(np.mean(solved))
    slow_row = next(c for c in configs if c["learning_rate"] == 0.5)
    assert slow_row["n_pending"] == 1
    assert slow_row["success_rate"] == pytest.approx(slow_row["n_solved"] / 2)
    fast_losses = [runs[i]["final_loss"] for i in fast[1:]]
    fast_row = next(c for c in configs if c["learning_rate"] == 2.0)
    assert fast_row["avg_final_loss"] == pytest.approx(np.mean(fast_losses), rel=1e-12)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("empty_pg_url")


def test_migration_creates_and_drops_the_views_and_check_ignores_them(empty_url) -> None:
    engine = make_engine(empty_url)
    try:
        migrate.upgrade_engine(engine)
        assert set(inspect(engine).get_view_names()) >= VIEWS
        migrate.check_engine(engine)  # autogenerate does not try to drop them
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(connection=conn), "0003")  # before the views
        insp = inspect(engine)
        assert not VIEWS & set(insp.get_view_names())
        assert "runs" in insp.get_table_names()
        migrate.upgrade_engine(engine)
        assert set(inspect(engine).get_view_names()) >= VIEWS
    finally:
        engine.dispose()
