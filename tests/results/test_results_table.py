"""`bplab results`: groups, statistics recomputed from the runs, sorting, pending runs."""

from __future__ import annotations

import numpy as np
import pytest

from service.db.session import session_scope
from service.execution import execute_run
from service.spec import parse_spec
from service.sweeps import create_sweep_from_spec
from tests.cli.conftest import Bplab
from tests.results.conftest import SEEDS, SMALL_SPEC

pytestmark = pytest.mark.timeout(120)


def _runs(bplab: Bplab, sweep_id: int) -> list[dict]:
    return bplab.json("runs", str(sweep_id))  # type: ignore[return-value]


def _hidden(run: dict) -> str:
    return "-".join(str(h) for h in run["params"]["hidden"])


def test_one_row_per_swept_configuration_with_stats_from_the_runs(finished) -> None:
    bplab, sid = finished
    rows = bplab.json("results", str(sid))
    runs = _runs(bplab, sid)
    assert len(rows) == 4
    assert {(r["learning_rate"], r["hidden"]) for r in rows} == {
        (0.5, "2"),
        (0.5, "3"),
        (2.0, "2"),
        (2.0, "3"),
    }
    for row in rows:
        mine = [
            r
            for r in runs
            if r["params"]["learning_rate"] == row["learning_rate"] and _hidden(r) == row["hidden"]
        ]
        assert row["seeds"] == len(mine) == SEEDS
        assert row["succeeded"] == sum(r["status"] == "succeeded" for r in mine)
        assert row["diverged"] == row["failed"] == row["pending"] == 0
        final = np.array([r["final_loss"] for r in mine])
        assert row["final_loss_mean"] == pytest.approx(final.mean(), rel=1e-12)
        assert row["final_loss_sd"] == pytest.approx(final.std(ddof=1), rel=1e-12)
        assert row["best_loss"] == pytest.approx(min(r["best_loss"] for r in mine), rel=1e-12)
        solved = np.array([r["solved_epoch"] for r in mine if r["solved_epoch"] is not None])
        assert row["success_rate"] == pytest.approx(solved.size / SEEDS)
        q1, med, q3 = np.percentile(solved, [25, 50, 75])
        assert (row["solved_epoch_q1"], row["solved_epoch_median"], row["solved_epoch_q3"]) == (
            pytest.approx(q1),
            pytest.approx(med),
            pytest.approx(q3),
        )
        wall = np.mean([r["wall_time_s"] for r in mine])
        assert row["wall_time_mean_s"] == pytest.approx(wall, rel=1e-9)
    # The sweep was built so that rates differ: some 2-2-1 seeds at 2.0 do not solve.
    assert {r["success_rate"] for r in rows} != {1.0}


def test_best_first_then_any_column(finished) -> None:
    bplab, sid = finished
    rows = bplab.json("results", str(sid))
    keys = [(-r["success_rate"], r["solved_epoch_median"], r["final_loss_mean"]) for r in rows]
    assert keys == sorted(keys)
    by_loss = bplab.json("results", str(sid), "--sort", "final_loss_mean")
    assert [r["final_loss_mean"] for r in by_loss] == sorted(r["final_loss_mean"] for r in rows)
    by_rate = bplab.json("results", str(sid), "--sort", "-learning_rate")
    assert [r["learning_rate"] for r in by_rate] == [2.0, 2.0, 0.5, 0.5]


def test_by_regroups_and_rejects_unknown_names(finished) -> None:
    bplab, sid = finished
    rows = bplab.json("results", str(sid), "--by", "learning_rate")
    assert sorted((r["learning_rate"], r["seeds"]) for r in rows) == [(0.5, 20), (2.0, 20)]
    assert "hidden" not in rows[0]
    both = bplab.json("results", str(sid), "--by", "hidden,momentum")
    assert sorted((r["hidden"], r["momentum"], r["seeds"]) for r in both) == [
        ("2", 0.9, 20),
        ("3", 0.9, 20),
    ]
    bad = bplab("results", str(sid), "--by", "learning_rat", expect=2)
    assert "unknown parameter 'learning_rat'" in bad.output
    assert "learning_rate" in bad.output and "momentum" in bad.output  # the allowed names
    bad_sort = bplab("results", str(sid), "--sort", "speed", expect=2)
    assert "final_loss_mean" in bad_sort.output
    assert "does not exist" in bplab("results", "999", expect=2).output


def test_table_and_csv(finished) -> None:
    bplab, sid = finished
    table = bplab("results", str(sid)).stdout
    assert "sweep 1: lr-compare (40 runs)" in table
    for header in ("learning_rate", "hidden", "seeds", "final loss", "epochs to solve"):
        assert header in table
    assert "pending" not in table.splitlines()[2]  # the column only appears when needed
    csv_text = bplab("results", str(sid), "--format", "csv").stdout
    header = csv_text.splitlines()[0].split(",")
    assert set(header[:2]) == {"learning_rate", "hidden"} and header[2] == "seeds"
    assert "solved_epoch_q3" in header and "pending" in header
    assert len(csv_text.splitlines()) == 5


def test_pending_runs_are_counted_not_dropped(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    bplab = Bplab(url, tmp_path)
    with session_scope(url) as s:
        sid = create_sweep_from_spec(s, parse_spec(SMALL_SPEC), backend="local")
    runs = _runs(bplab, sid)
    first = [r["id"] for r in runs if r["params"]["learning_rate"] == 2.0][:2]
    for run_id in first:  # train two runs; the other four stay queued
        assert execute_run(run_id, url=url) == "succeeded"
    rows = {r["learning_rate"]: r for r in bplab.json("results", str(sid))}
    assert rows[2.0]["seeds"] == 3 and rows[2.0]["pending"] == 1 and rows[2.0]["succeeded"] == 2
    assert rows[0.5]["pending"] == 3 and rows[0.5]["success_rate"] is None
    # Success rate over the finished runs only.
    solved = sum(1 for r in _runs(bplab, sid) if r["id"] in first and r["solved_epoch"] is not None)
    assert rows[2.0]["success_rate"] == pytest.approx(solved / 2)
    table = bplab("results", str(sid)).stdout
    assert "6 runs, 4 pending" in table and "pending" in table
