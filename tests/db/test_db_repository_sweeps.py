"""The repository's sweeps against real SQLite and PostgreSQL (every test runs on both):
creating one with its runs (all or nothing), listing, counting, timing, deleting."""

from __future__ import annotations

import time

import numpy as np
import pytest
from dbhelpers import full_config
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.models import EpochMetric, Run, Sweep
from service.db.session import session_scope


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_create_sweep_writes_sweep_and_runs_with_derived_columns(db_url, session):
    configs = [
        full_config(learning_rate=0.1, hidden=[4, 4], batch_size=8, init="xavier"),
        full_config(learning_rate=1, hidden=[], init=1),
    ]
    with session_scope(db_url) as s:
        sweep_id = repo.create_sweep(
            s,
            name="lr",
            dataset="xor",
            method="grid",
            spec={"dataset": "xor", "seeds": 3},
            swept=["learning_rate", "hidden"],
            backend="local",
            runs=[{"config": c, "seed": seed} for c in configs for seed in range(3)],
        )
    sweep = repo.get_sweep(session, sweep_id)
    assert (sweep.name, sweep.n_runs, sweep.swept) == ("lr", 6, ["learning_rate", "hidden"])
    assert sweep.spec == {"dataset": "xor", "seeds": 3}
    assert sweep.created_at.tzinfo is not None

    runs = repo.list_runs(session, sweep_id)
    assert [r.seed for r in runs] == [0, 1, 2, 0, 1, 2]
    assert {r.status for r in runs} == {"queued"} and {r.attempt for r in runs} == {0}
    first, last = runs[0], runs[-1]
    assert first.config == configs[0]
    assert (first.hidden, first.batch_size, first.init, first.learning_rate) == (
        "4-4",
        8,
        "xavier",
        0.1,
    )
    assert (last.hidden, last.batch_size, last.init, last.learning_rate) == ("", None, "1.0", 1.0)
    # config_key: equal across seeds, different across configurations.
    assert len({r.config_key for r in runs[:3]}) == 1
    assert runs[0].config_key != runs[3].config_key
    assert runs[0].config_key == repo.config_key(configs[0])
    assert repo.run_ids(session, sweep_id) == [r.id for r in runs]


def test_create_sweep_failing_midway_leaves_nothing(db_url, session):
    runs = [{"config": full_config(), "seed": s} for s in range(50)]
    runs[30] = {"config": {"dataset": "xor"}, "seed": 0}  # lacks every other key
    with pytest.raises(ValueError, match="lacks the key"), session_scope(db_url) as s:
        repo.create_sweep(
            s,
            name="bad",
            dataset="xor",
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=runs,
        )
    assert _count(session, Sweep) == 0
    assert _count(session, Run) == 0


def test_create_sweep_database_error_rolls_back_the_sweep_row(db_url, session):
    # A failure inside the database (not in Python) after the sweep row was flushed.
    runs = [{"config": full_config(), "seed": s} for s in range(5)]
    # The last row cannot be stored (too large for runs.seed on PostgreSQL, for any SQLite
    # integer): the rows before it were already sent in the same executemany.
    runs.append({"config": full_config(), "seed": 2**64})
    with pytest.raises(Exception), session_scope(db_url) as s:  # noqa: B017
        repo.create_sweep(
            s,
            name="bad",
            dataset="xor",
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=runs,
        )
    assert _count(session, Sweep) == 0
    assert _count(session, Run) == 0


def test_create_sweep_10000_runs_is_fast(db_url, session):
    configs = [full_config(learning_rate=0.01 * (i + 1)) for i in range(100)]
    runs = [{"config": c, "seed": s} for c in configs for s in range(100)]
    t0 = time.perf_counter()
    with session_scope(db_url) as s:
        sweep_id = repo.create_sweep(
            s,
            name="big",
            dataset="xor",
            method="grid",
            spec={},
            swept=["learning_rate"],
            backend="celery",
            runs=runs,
        )
    elapsed = time.perf_counter() - t0
    print(f"create_sweep 10,000 runs: {elapsed:.3f} s")
    assert repo.status_counts(session, sweep_id)["queued"] == 10_000
    assert elapsed < 5.0  # issue 8: validate + write + publish under 5 s; writing is a part


def test_list_sweeps_and_status_counts(db_url, session, make_sweep):
    a = make_sweep(seeds=3)
    b = make_sweep(seeds=1)
    attempt = repo.claim_run(session, repo.run_ids(session, a)[0], "w")
    repo.finish_run(session, repo.run_ids(session, a)[0], attempt, status="succeeded")
    session.commit()
    counts = repo.status_counts(session, a)
    assert counts == {
        "queued": 2,
        "running": 0,
        "succeeded": 1,
        "diverged": 0,
        "failed": 0,
        "cancelled": 0,
        "pruned": 0,
    }
    listed = repo.list_sweeps(session)
    assert [row["id"] for row in listed] == [a, b]
    assert {k: listed[0][k] for k in counts} == counts
    assert (listed[0]["runs"], listed[1]["runs"], listed[1]["queued"]) == (3, 1, 1)
    assert listed[0]["name"] == "t" and listed[0]["created_at"].tzinfo is not None


def test_sweep_timing(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=2)
    assert repo.sweep_timing(session, sweep_id)["elapsed_s"] is None
    for run_id, wall in zip(repo.run_ids(session, sweep_id), (1.0, 3.0), strict=True):
        attempt = repo.claim_run(session, run_id, "w")
        session.commit()
        time.sleep(0.01)
        repo.finish_run(session, run_id, attempt, status="succeeded", wall_time_s=wall)
        session.commit()
    timing = repo.sweep_timing(session, sweep_id)
    assert timing["first_started_at"] <= timing["last_finished_at"]
    assert timing["elapsed_s"] >= 0
    assert (timing["total_wall_time_s"], timing["mean_wall_time_s"]) == (4.0, 2.0)


def test_list_runs_filter_sort_limit(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=4)
    ids = repo.run_ids(session, sweep_id)
    losses = {ids[0]: 0.3, ids[1]: 0.1, ids[2]: float("nan")}  # ids[3] stays queued
    for run_id, loss in losses.items():
        attempt = repo.claim_run(session, run_id, "w")
        repo.finish_run(session, run_id, attempt, status="succeeded", final_loss=loss)
    session.commit()
    by_loss = [r.id for r in repo.list_runs(session, sweep_id, sort="final_loss")]
    assert by_loss == [ids[1], ids[0], ids[2], ids[3]]  # NaN after numbers, NULL last
    desc = [r.id for r in repo.list_runs(session, sweep_id, sort="-final_loss")]
    assert desc[-1] == ids[3]  # NULL last in both directions
    assert [r.id for r in repo.list_runs(session, sweep_id, status="queued")] == [ids[3]]
    assert len(repo.list_runs(session, sweep_id, sort="seed", limit=2)) == 2
    with pytest.raises(ValueError, match="cannot sort by"):
        repo.list_runs(session, sweep_id, sort="nope")
    with pytest.raises(ValueError, match="unknown status"):
        repo.list_runs(session, sweep_id, status="done")


def test_deleting_a_sweep_cascades(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=1)
    run_id = repo.run_ids(session, sweep_id)[0]
    attempt = repo.claim_run(session, run_id, "w")
    repo.record_epochs(session, run_id, attempt, [{"epoch": 1, "loss": 1.0}])
    repo.save_weights(session, run_id, attempt, [np.zeros(2)])
    repo.save_checkpoint(session, run_id, attempt, 1, b"s")
    session.commit()
    session.execute(delete(Sweep).where(Sweep.id == sweep_id))
    session.commit()
    assert _count(session, Run) == 0 and _count(session, EpochMetric) == 0
