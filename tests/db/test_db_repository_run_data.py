"""What a run stores through the repository, against real SQLite and PostgreSQL (every test
runs on both): epoch rows, weights and checkpoints, with their checks."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.blobs import sha256_hex
from service.db.models import EpochMetric

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
