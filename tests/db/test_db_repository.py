"""The repository against real SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

import io
import math
import threading
import time

import numpy as np
import pytest
from dbhelpers import full_config
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.blobs import sha256_hex
from service.db.models import EpochMetric, Run, Sweep
from service.db.session import get_engine, session_scope


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- sweeps ------------------------------------------------------------------------------


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


# --- claiming, fencing, finishing --------------------------------------------------------


def test_claim_twice_second_gets_none(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    assert repo.claim_run(session, run_id, "w1") == 1
    session.commit()
    assert repo.claim_run(session, run_id, "w2") is None
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker) == ("running", 1, "w1")
    assert run.started_at is not None and run.heartbeat_at is not None


def test_concurrent_claims_one_wins(db_url, session, make_sweep):
    """Two sessions claim the same run at once; the second waits for the first's commit."""
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    results: dict[str, int | None] = {}
    with Session(bind=get_engine(db_url)) as first:
        results["first"] = repo.claim_run(first, run_id, "w1")  # holds the lock, uncommitted

        def second() -> None:
            with session_scope(db_url) as s:
                results["second"] = repo.claim_run(s, run_id, "w2")

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert t.is_alive(), "the second claim should wait for the first transaction"
        first.commit()
        t.join(timeout=30)
    assert results == {"first": 1, "second": None}


def test_stale_attempt_writes_are_rejected_and_write_nothing(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=1)
    run_id = repo.run_ids(session, sweep_id)[0]
    old = repo.claim_run(session, run_id, "slow")
    repo.record_epochs(session, run_id, old, [{"epoch": 1, "loss": 0.9}])
    session.commit()
    assert repo.requeue_runs(session, sweep_id) == 1  # its lease was declared lost
    new = repo.claim_run(session, run_id, "fresh")
    session.commit()
    assert new == old + 1

    late_rows = [{"epoch": 2, "loss": 0.8}, {"epoch": 3, "loss": 0.7}]
    for write in (
        lambda: repo.record_epochs(session, run_id, old, late_rows),
        lambda: repo.heartbeat(session, run_id, old),
        lambda: repo.save_weights(session, run_id, old, []),
        lambda: repo.save_checkpoint(session, run_id, old, 3, b"state"),
        lambda: repo.finish_run(session, run_id, old, status="succeeded", final_loss=0.7),
        lambda: repo.fail_run(session, run_id, old, "late"),
    ):
        with pytest.raises(repo.StaleAttempt):
            write()
        session.commit()  # whatever got through would now be durable

    assert [e.epoch for e in repo.epoch_rows(session, run_id)] == [1]
    assert repo.load_checkpoint(session, run_id) is None
    with pytest.raises(repo.NotFound):
        repo.load_weights(session, run_id)
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker, run.final_loss) == ("running", new, "fresh", None)

    repo.record_epochs(session, run_id, new, late_rows)  # the current attempt still writes
    repo.finish_run(session, run_id, new, status="succeeded", epochs_run=3, final_loss=0.7)
    session.commit()
    # A finished run is no longer 'running': even its own attempt cannot write any more.
    with pytest.raises(repo.StaleAttempt):
        repo.heartbeat(session, run_id, new)


def test_finish_and_fail(db_url, session, make_sweep):
    a, b = repo.run_ids(session, make_sweep(seeds=2))
    att = repo.claim_run(session, a, "w")
    repo.finish_run(
        session,
        a,
        att,
        status="diverged",
        epochs_run=12,
        final_loss=float("inf"),
        best_loss=0.4,
        accuracy=0.5,
        val_loss=None,
        solved_epoch=None,
        wall_time_s=0.25,
    )
    att_b = repo.claim_run(session, b, "w")
    repo.fail_run(session, b, att_b, "Traceback: boom")
    session.commit()
    ra, rb = repo.get_run(session, a), repo.get_run(session, b)
    assert (ra.status, ra.epochs_run, ra.final_loss, ra.best_loss) == (
        "diverged",
        12,
        math.inf,
        0.4,
    )
    assert ra.finished_at >= ra.started_at
    assert (rb.status, rb.error) == ("failed", "Traceback: boom")
    with pytest.raises(ValueError, match="finish status"):
        repo.finish_run(session, a, att, status="running")


def test_heartbeat_uses_database_time(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    attempt = repo.claim_run(session, run_id, "w")
    session.commit()
    first = repo.get_run(session, run_id).heartbeat_at
    time.sleep(0.05)
    repo.heartbeat(session, run_id, attempt)
    session.commit()
    session.expire_all()
    later = repo.get_run(session, run_id).heartbeat_at
    db_time = session.scalar(select(func.now()))
    assert first.tzinfo is not None and later > first
    if session.get_bind().dialect.name == "postgresql":
        assert abs((db_time - later).total_seconds()) < 60


def test_requeue_puts_running_back_and_keeps_attempt(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=3)
    r1, r2, r3 = repo.run_ids(session, sweep_id)
    a1 = repo.claim_run(session, r1, "dead")
    repo.claim_run(session, r2, "dead")
    a3 = repo.claim_run(session, r3, "w")
    repo.finish_run(session, r3, a3, status="failed", error="x")
    repo.record_epochs(session, r1, a1, [{"epoch": 1, "loss": 1.0}])
    session.commit()
    assert repo.requeue_runs(session, sweep_id) == 2
    assert repo.requeue_runs(session, sweep_id, ["failed"]) == 1
    session.commit()
    runs = repo.list_runs(session, sweep_id)
    assert [(r.status, r.attempt, r.worker, r.error) for r in runs] == [
        ("queued", 1, None, None),
        ("queued", 1, None, None),
        ("queued", 1, None, None),
    ]
    assert len(repo.epoch_rows(session, r1)) == 1  # kept for the resumed attempt
    assert repo.claim_run(session, r1, "new") == 2


def test_release_run_hands_a_stopped_run_back(db_url, session, make_sweep):
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    attempt = repo.claim_run(session, run_id, "w")
    repo.save_checkpoint(session, run_id, attempt, 5, b"s5")
    repo.release_run(session, run_id, attempt)
    session.commit()
    run = repo.get_run(session, run_id)
    assert (run.status, run.attempt, run.worker, run.heartbeat_at) == ("queued", 1, None, None)
    assert repo.load_checkpoint(session, run_id) == (5, b"s5")
    with pytest.raises(repo.StaleAttempt):
        repo.release_run(session, run_id, attempt)  # no longer running
    assert repo.claim_run(session, run_id, "w2") == 2


def test_requeue_stale_runs_uses_the_lease(db_url, session, make_sweep):
    sweep_id = make_sweep(seeds=2)
    other = make_sweep(seeds=1)
    r1, r2 = repo.run_ids(session, sweep_id)
    (r3,) = repo.run_ids(session, other)
    for run_id in (r1, r2, r3):
        repo.claim_run(session, run_id, "w")
    session.commit()
    assert repo.requeue_stale_runs(session, sweep_id, older_than_s=3600) == 0  # fresh leases
    time.sleep(1.1)
    attempt2 = repo.get_run(session, r2).attempt
    repo.heartbeat(session, r2, attempt2)  # r2's worker is alive
    session.commit()
    assert repo.requeue_stale_runs(session, sweep_id, older_than_s=1.0) == 1
    session.commit()
    assert [r.status for r in repo.list_runs(session, sweep_id)] == ["queued", "running"]
    assert repo.get_run(session, r3).status == "running"  # another sweep: untouched
    assert repo.requeue_stale_runs(session, None, older_than_s=0) == 2
    session.commit()
    assert repo.status_counts(session, other)["queued"] == 1


# --- epoch rows --------------------------------------------------------------------------


def _claimed_run(session: Session, make_sweep) -> tuple[int, int]:
    run_id = repo.run_ids(session, make_sweep(seeds=1))[0]
    attempt = repo.claim_run(session, run_id, "w")
    session.commit()
    return run_id, attempt


def test_record_epochs_is_batched_and_idempotent(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    batch = [
        {"epoch": e, "loss": 1.0 / e, "accuracy": 0.5, "max_error": 0.9} for e in range(1, 101)
    ]
    repo.record_epochs(session, run_id, attempt, batch)
    session.commit()
    repo.record_epochs(session, run_id, attempt, batch)  # the same batch again
    overlapping = [{"epoch": e, "loss": -1.0} for e in range(90, 121)]
    repo.record_epochs(session, run_id, attempt, overlapping)
    session.commit()
    rows = repo.epoch_rows(session, run_id)
    assert [r.epoch for r in rows] == list(range(1, 121))
    assert rows[0].loss == 1.0 and rows[99].loss == 0.01  # first write wins
    assert rows[100].loss == -1.0 and rows[100].accuracy is None
    n = session.scalar(select(func.count()).where(EpochMetric.run_id == run_id))
    assert n == 120


def test_record_epochs_never_commits(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    repo.record_epochs(session, run_id, attempt, [{"epoch": 1, "loss": 0.5}])
    session.rollback()
    assert repo.epoch_rows(session, run_id) == []


def test_record_epochs_accepts_numpy_scalars_and_rejects_unknown_keys(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    repo.record_epochs(
        session,
        run_id,
        attempt,
        [{"epoch": np.int64(1), "loss": np.float64(0.25), "accuracy": np.float32(0.5)}],
    )
    with pytest.raises(ValueError, match="unknown epoch metric"):
        repo.record_epochs(session, run_id, attempt, [{"epoch": 2, "lost": 1.0}])
    session.commit()
    (row,) = repo.epoch_rows(session, run_id)
    assert (row.epoch, row.loss, row.accuracy) == (1, 0.25, 0.5)


def test_nan_and_infinities_round_trip_and_null_stays_null(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    values = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-300, 1.5, None]
    repo.record_epochs(
        session,
        run_id,
        attempt,
        [{"epoch": i + 1, "loss": v, "val_loss": v} for i, v in enumerate(values)],
    )
    repo.finish_run(
        session, run_id, attempt, status="diverged", final_loss=float("nan"), best_loss=None
    )
    session.commit()
    session.expire_all()
    got = [(r.loss, r.val_loss) for r in repo.epoch_rows(session, run_id)]
    for (loss, val), want in zip(got, values, strict=True):
        for value in (loss, val):
            if want is None:
                assert value is None
            elif math.isnan(want):
                assert math.isnan(value)
            else:
                assert value == want  # (SQLite does not keep the sign of -0.0; not needed)
    run = repo.get_run(session, run_id)
    assert math.isnan(run.final_loss) and run.best_loss is None
    # Plain SQL sees NaN too, and sorts it after every number on both databases.
    order = (
        session.execute(
            text(
                "SELECT epoch FROM epoch_metrics WHERE run_id = :r AND loss IS NOT NULL"
                " ORDER BY loss"
            ),
            {"r": run_id},
        )
        .scalars()
        .all()
    )
    assert order in ([3, 4, 5, 6, 7, 2, 1], [3, 5, 4, 6, 7, 2, 1])  # 0.0 == -0.0


# --- weights and checkpoints -------------------------------------------------------------


def test_weights_round_trip_bit_identical(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(2, 3)), rng.normal(size=3), rng.normal(size=(3, 1)), np.ones(1)]
    arrays[0][0, 0] = np.nan
    repo.save_weights(session, run_id, attempt, arrays)
    session.commit()
    session.expire_all()
    loaded = repo.load_weights(session, run_id)
    assert len(loaded) == 4
    for a, b in zip(arrays, loaded, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()
    row = session.execute(
        text("SELECT shapes, dtype, sha256 FROM run_weights WHERE run_id = :r"), {"r": run_id}
    ).one()
    assert row.dtype == "float64" and len(row.sha256) == 64
    # Saved again (a later attempt would do this): replaced, still one row.
    repo.save_weights(session, run_id, attempt, arrays[:1])
    session.commit()
    session.expire_all()
    assert len(repo.load_weights(session, run_id)) == 1


def test_tampered_weights_are_refused(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    repo.save_weights(session, run_id, attempt, [np.arange(6.0).reshape(2, 3)])
    session.commit()
    data = session.execute(text("SELECT data FROM run_weights WHERE run_id = :r"), {"r": run_id})
    blob = bytearray(data.scalar_one())
    blob[-1] ^= 0x01  # one flipped bit in the last float
    session.execute(
        text("UPDATE run_weights SET data = :d WHERE run_id = :r"), {"d": bytes(blob), "r": run_id}
    )
    session.commit()
    session.expire_all()
    with pytest.raises(repo.BlobError, match="sha256 mismatch"):
        repo.load_weights(session, run_id)


def test_object_dtype_weights_blob_is_refused(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    with pytest.raises(repo.BlobError, match="object arrays"):
        repo.save_weights(session, run_id, attempt, [np.array([1, "x"], dtype=object)])
    # Someone writes a pickled object array straight into the table, with a valid sha256:
    # loading must still refuse it rather than unpickle.
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    blob = buf.getvalue()
    session.execute(
        text(
            "INSERT INTO run_weights (run_id, data, shapes, dtype, sha256)"
            " VALUES (:r, :d, :s, 'object', :h)"
        ),
        {"r": run_id, "d": blob, "s": "[[1]]", "h": sha256_hex(blob)},
    )
    session.commit()
    with pytest.raises(repo.BlobError, match="cannot be loaded safely"):
        repo.load_weights(session, run_id)


def test_checkpoint_is_replaced_in_place_and_checked(db_url, session, make_sweep):
    run_id, attempt = _claimed_run(session, make_sweep)
    assert repo.load_checkpoint(session, run_id) is None
    repo.save_checkpoint(session, run_id, attempt, 100, b"state-100")
    session.commit()
    repo.save_checkpoint(session, run_id, attempt, 200, b"state-200")
    session.commit()
    session.expire_all()
    assert repo.load_checkpoint(session, run_id) == (200, b"state-200")
    n = session.scalar(text("SELECT count(*) FROM checkpoints WHERE run_id = :r"), {"r": run_id})
    assert n == 1
    session.execute(
        text("UPDATE checkpoints SET data = :d WHERE run_id = :r"), {"d": b"state-999", "r": run_id}
    )
    session.commit()
    session.expire_all()
    with pytest.raises(repo.BlobError, match="checkpoint"):
        repo.load_checkpoint(session, run_id)
