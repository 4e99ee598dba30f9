"""service.db.bulk.insert_epoch_rows_fenced: the fence and the rows in one write, both paths."""

from __future__ import annotations

import math

import pytest
from dbhelpers import full_config

from service.db import repository as repo
from service.db.bulk import COPY_MIN_ROWS, epoch_tuples, insert_epoch_rows_fenced
from service.db.session import session_scope


def _claimed(url: str) -> tuple[int, int]:
    with session_scope(url) as s:
        sweep_id = repo.create_sweep(
            s,
            name="fenced",
            dataset="xor",
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=[{"config": full_config(), "seed": 0}],
        )
        run_id = repo.run_ids(s, sweep_id)[0]
    with session_scope(url) as s:
        attempt = repo.claim_run(s, run_id, "w1")
    assert attempt is not None
    return run_id, attempt


def _rows(first: int, count: int, loss: float = 1.0) -> list[dict]:
    return [
        {"epoch": e, "loss": loss / e, "accuracy": None, "max_error": 0.25}
        for e in range(first, first + count)
    ]


def _stored(url: str, run_id: int) -> dict[int, tuple]:
    with session_scope(url) as s:
        return {
            r.epoch: (r.loss, r.accuracy, r.max_error, r.val_loss)
            for r in repo.epoch_rows(s, run_id)
        }


@pytest.mark.parametrize("form", ["mappings", "tuples"])
@pytest.mark.parametrize("size", [3, COPY_MIN_ROWS + 5])
def test_current_attempt_writes_and_first_row_wins(db_url, size, form):
    """Rows as mappings, or laid out as the executor's recorder keeps them (epoch_tuples)."""
    run_id, attempt = _claimed(db_url)
    rows = _rows(1, size)
    rows[1]["loss"] = math.nan
    rows[2]["max_error"] = math.inf
    sent = epoch_tuples(rows) if form == "tuples" else rows
    with session_scope(db_url) as s:
        assert insert_epoch_rows_fenced(s.connection(), run_id, attempt, sent)
    # a replay of an overlapping batch (after a resume) keeps what was written first
    with session_scope(db_url) as s:
        assert insert_epoch_rows_fenced(
            s.connection(), run_id, attempt, _rows(size - 1, size, loss=7.0)
        )
    stored = _stored(db_url, run_id)
    assert len(stored) == 2 * size - 2
    assert stored[1] == (1.0, None, 0.25, None)
    assert math.isnan(stored[2][0]) and stored[3][2] == math.inf
    assert stored[size][0] == 1.0 / size  # first write kept
    assert stored[size + 1][0] == 7.0 / (size + 1)  # new epochs added


@pytest.mark.parametrize("size", [2, COPY_MIN_ROWS])
def test_stale_attempt_writes_nothing(db_url, size):
    run_id, attempt = _claimed(db_url)
    with session_scope(db_url) as s:
        repo.release_run(s, run_id, attempt)
    with session_scope(db_url) as s:
        newer = repo.claim_run(s, run_id, "w2")
    assert newer == attempt + 1
    with session_scope(db_url) as s:
        assert not insert_epoch_rows_fenced(s.connection(), run_id, attempt, _rows(1, size))
    assert _stored(db_url, run_id) == {}
    with session_scope(db_url) as s:
        assert insert_epoch_rows_fenced(s.connection(), run_id, newer, _rows(1, size))
    assert len(_stored(db_url, run_id)) == size


def test_finished_run_refuses_rows_and_bad_keys_raise(db_url):
    run_id, attempt = _claimed(db_url)
    with session_scope(db_url) as s:
        repo.fail_run(s, run_id, attempt, error="boom")
    with session_scope(db_url) as s:
        assert not insert_epoch_rows_fenced(s.connection(), run_id, attempt, _rows(1, 4))
    run2, attempt2 = _claimed(db_url)
    for size in (1, COPY_MIN_ROWS):
        rows = _rows(1, size)
        rows[-1]["bogus"] = 1.0
        with pytest.raises(ValueError, match="bogus"), session_scope(db_url) as s:
            insert_epoch_rows_fenced(s.connection(), run2, attempt2, rows)
    assert _stored(db_url, run2) == {}


def test_heartbeat_is_renewed(db_url):
    run_id, attempt = _claimed(db_url)
    with session_scope(db_url) as s:
        before = repo.get_run(s, run_id).heartbeat_at
    import time

    time.sleep(0.01)
    for size in (1, COPY_MIN_ROWS):
        with session_scope(db_url) as s:
            assert insert_epoch_rows_fenced(s.connection(), run_id, attempt, _rows(10 * size, size))
        with session_scope(db_url) as s:
            after = repo.get_run(s, run_id).heartbeat_at
        assert after > before
        before = after
        time.sleep(0.01)


def test_many_runs_at_once_only_current_attempts_write(db_url):
    from service.db.bulk import insert_epoch_rows_fenced_many

    (r1, a1), (r2, a2), (r3, a3) = (_claimed(db_url) for _ in range(3))
    with session_scope(db_url) as s:
        repo.release_run(s, r2, a2)  # r2's attempt lost its run
    with session_scope(db_url) as s:
        out = insert_epoch_rows_fenced_many(
            s.connection(), [(r1, a1, _rows(1, 3)), (r2, a2, _rows(1, 3)), (r3, a3, [])]
        )
    assert out == {r2}
    assert sorted(_stored(db_url, r1)) == [1, 2, 3]
    assert _stored(db_url, r2) == {} and _stored(db_url, r3) == {}
    with session_scope(db_url) as s:
        assert insert_epoch_rows_fenced_many(s.connection(), []) == set()


@pytest.mark.parametrize("form", ["mappings", "tuples"])
@pytest.mark.parametrize("many", [False, True])
def test_every_value_comes_back_bit_for_bit(db_url, many, form):
    """The columns go to PostgreSQL as binary arrays (NULL arrays for columns of None only,
    psycopg's own lists where None and numbers mix): every double comes back as it went in,
    including NaN, infinities, the smallest subnormal and values with 17 significant digits."""
    import numpy as np

    from service.db.bulk import insert_epoch_rows_fenced_many

    specials = [math.nan, math.inf, -math.inf, 5e-324, 0.1, 1 / 3, 2.0**-1074 * 3]
    # 247 rows: on SQLite two whole statements of 100 VALUES rows and one of 47
    values = specials + np.random.default_rng(7).standard_normal(240).tolist()
    rows = [
        {
            "epoch": e + 1,
            "loss": v,
            "max_error": -v,
            "accuracy": None if e % 3 else v,  # a column mixing None and numbers
        }
        for e, v in enumerate(values)
    ]
    run_id, attempt = _claimed(db_url)
    sent = epoch_tuples(rows) if form == "tuples" else rows
    with session_scope(db_url) as s:
        if many:
            assert insert_epoch_rows_fenced_many(s.connection(), [(run_id, attempt, sent)]) == set()
        else:
            assert insert_epoch_rows_fenced(s.connection(), run_id, attempt, sent)
    stored = _stored(db_url, run_id)
    assert sorted(stored) == [r["epoch"] for r in rows]
    for row in rows:
        loss, accuracy, max_error, val_loss = stored[row["epoch"]]
        for got, sent in ((loss, row["loss"]), (max_error, row["max_error"])):
            assert np.array([got]).tobytes() == np.array([sent]).tobytes() or (
                math.isnan(got) and math.isnan(sent)
            )
        assert val_loss is None
        if row["accuracy"] is None:
            assert accuracy is None
        else:
            assert accuracy == row["accuracy"] or (
                math.isnan(accuracy) and math.isnan(row["accuracy"])
            )
