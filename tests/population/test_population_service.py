"""Population tasks in the service: each run recorded exactly as if trained alone."""

from __future__ import annotations

import numpy as np
import pytest

from service.db import repository as repo
from service.db.session import session_scope
from service.execution import execute_run, execute_runs
from service.grouping import group_run_ids, group_runs, shape_key
from service.spec import parse_spec


def _configs(**parameters) -> list[tuple[dict, int]]:
    spec = parse_spec(
        {
            "name": "pop",
            "dataset": parameters.pop("dataset", "xor"),
            "seeds": 2,
            "parameters": parameters,
        }
    )
    return [(dict(r.config), int(r.seed)) for r in spec.expand()]


def _sweep(url: str, runs: list[tuple[dict, int]]) -> list[int]:
    with session_scope(url) as s:
        sweep_id = repo.create_sweep(
            s,
            name="pop",
            dataset=runs[0][0]["dataset"],
            method="grid",
            spec={},
            swept=[],
            backend="local",
            runs=[{"config": c, "seed": seed} for c, seed in runs],
        )
        return repo.run_ids(s, sweep_id)


def _result(url: str, run_id: int) -> dict:
    with session_scope(url) as s:
        run = repo.get_run(s, run_id)
        rows = [
            (r.epoch, r.loss, r.accuracy, r.max_error, r.val_loss, r.val_accuracy)
            for r in repo.epoch_rows(s, run_id)
        ]
        weights = repo.load_weights(s, run_id) if run.status in ("succeeded", "diverged") else None
        summary = {
            k: getattr(run, k)
            for k in (
                "status",
                "epochs_run",
                "final_loss",
                "best_loss",
                "accuracy",
                "val_loss",
                "solved_epoch",
            )
        }
    return {"rows": rows, "weights": weights, "summary": summary}


def _same_results(a: dict, b: dict) -> None:
    assert a["summary"] == b["summary"]
    assert len(a["rows"]) == len(b["rows"])
    for ra, rb in zip(a["rows"], b["rows"], strict=True):
        assert ra[0] == rb[0]
        np.testing.assert_array_equal(np.array(ra[1:], dtype=float), np.array(rb[1:], dtype=float))
    if a["weights"] is None:
        assert b["weights"] is None
    else:
        for wa, wb in zip(a["weights"], b["weights"], strict=True):
            np.testing.assert_array_equal(wa, wb)


MIXED = dict(
    learning_rate=[0.3, 2.0, 1e5],
    momentum=[0.0, 0.9],
    epochs=300,
    stop_within=0.4,
    stop_on_solve=True,
    log_every=7,
    activation="tanh",
    output_activation="identity",
)  # a few solve, a few run to the end, the huge learning rates diverge


def test_population_records_each_run_as_if_trained_alone(db_url, monkeypatch):
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    runs = _configs(**MIXED)
    alone = _sweep(db_url, runs)
    together = _sweep(db_url, runs)
    for rid in alone:
        execute_run(rid, url=db_url)
    statuses = execute_runs(together, url=db_url, worker="pop")
    assert set(statuses) == set(together)
    assert {s for s in statuses.values()} >= {"succeeded", "diverged"}
    for a, b in zip(alone, together, strict=True):
        ra, rb = _result(db_url, a), _result(db_url, b)
        assert rb["summary"]["status"] == statuses[b]
        _same_results(ra, rb)
    solved = [_result(db_url, b)["summary"]["solved_epoch"] for b in together]
    assert any(s is not None for s in solved) and len({str(s) for s in solved}) > 2


def test_only_claimed_runs_are_trained(db_url):
    runs = _configs(learning_rate=[0.5, 1.0], epochs=20)
    ids = _sweep(db_url, runs)
    with session_scope(db_url) as s:
        assert repo.claim_run(s, ids[1], "someone-else") == 1
    statuses = execute_runs(ids, url=db_url)
    assert statuses[ids[1]] is None
    assert all(statuses[r] == "succeeded" for r in ids if r != ids[1])
    with session_scope(db_url) as s:
        assert repo.get_run(s, ids[1]).status == "running"
        assert repo.get_run(s, ids[1]).worker == "someone-else"
        assert repo.epoch_rows(s, ids[1]) == []


def test_stop_hands_every_run_back_and_resume_ends_where_uninterrupted(db_url):
    runs = _configs(learning_rate=[0.5, 1.0], momentum=[0.5, 0.9], epochs=120, log_every=1)
    ids = _sweep(db_url, runs)
    ref = _sweep(db_url, runs)
    execute_runs(ref, url=db_url)
    calls = []

    def stop_after_40() -> bool:
        calls.append(1)
        return len(calls) >= 40

    statuses = execute_runs(ids, url=db_url, should_stop=stop_after_40)
    assert set(statuses.values()) == {"queued"}
    with session_scope(db_url) as s:
        assert {repo.load_checkpoint(s, r)[0] for r in ids} == {40}
    statuses = execute_runs(ids, url=db_url)
    assert set(statuses.values()) == {"succeeded"}
    for a, b in zip(ref, ids, strict=True):
        _same_results(_result(db_url, a), _result(db_url, b))


def test_a_run_taken_over_stops_alone_the_others_finish(db_url):
    runs = _configs(learning_rate=[0.5, 1.0], epochs=400, log_every=1)
    ids = _sweep(db_url, runs)
    victim = ids[2]
    calls = []

    def take_over() -> bool:
        calls.append(1)
        if len(calls) == 30:  # another worker re-queued and re-claimed the run meanwhile
            with session_scope(db_url) as s:
                attempt = repo.get_run(s, victim).attempt
                repo.release_run(s, victim, attempt)
            with session_scope(db_url) as s:
                assert repo.claim_run(s, victim, "newer") == attempt + 1
        return False

    import service.execution.group as population

    monkey_hb = population.reliability.heartbeat_seconds
    population.reliability.heartbeat_seconds = lambda: 0.0  # flush every epoch
    try:
        statuses = execute_runs(ids, url=db_url, should_stop=take_over)
    finally:
        population.reliability.heartbeat_seconds = monkey_hb
    assert statuses[victim] is None
    assert all(statuses[r] == "succeeded" for r in ids if r != victim)
    with session_scope(db_url) as s:
        run = repo.get_run(s, victim)
        assert (run.status, run.worker) == ("running", "newer")
        assert max(r.epoch for r in repo.epoch_rows(s, victim)) <= 31


def test_shape_key_and_groups():
    base = _configs(learning_rate=[0.1, 0.5], epochs=[10, 20], init=[0.3, "xavier"])
    keys = {shape_key(c, seed) for c, seed in base}
    assert len(keys) == 1  # members may differ in these
    other = _configs(hidden=[[3]])
    assert shape_key(other[0][0], 0) not in keys
    split = _configs(validation_split=0.25, dataset="parity:4")
    assert shape_key(split[0][0], 0) != shape_key(split[0][0], 1)  # the seed draws the split
    runs = [(i, c, seed) for i, (c, seed) in enumerate(base + other)]
    groups = group_runs(runs, size=3)
    assert sorted(r for g in groups for r in g) == list(range(len(runs)))
    assert all(len(g) <= 3 for g in groups)
    assert all(len({shape_key(runs[r][1], runs[r][2]) for r in g}) == 1 for g in groups)
    assert group_runs(runs, size=1) == [[r] for r in range(len(runs))]
    # a small shape is cut into at least min_groups groups of equal size
    spread = group_runs(runs, size=64, min_groups=3)
    assert [len(g) for g in spread] == [6, 5, 5, 1, 1]


def _shaped(*shapes: tuple[int, int, int]) -> list[tuple[int, dict, int]]:
    """(hidden units, runs, epochs) per shape -> (run_id, config, seed) in that order."""
    runs = []
    for hidden, n, epochs in shapes:
        for _ in range(n):
            runs.append((len(runs), {"hidden": [hidden], "epochs": epochs}, 0))
    return runs


def test_groups_are_equal_and_keep_every_process_busy():
    # 200 runs with at most 64 a population: four of 50, not 64/64/64/8 (two processes
    # would then end one group apart, the last one holding up the sweep)
    runs = _shaped((2, 200, 1000))
    assert [len(g) for g in group_runs(runs, size=64)] == [50] * 4
    assert [len(g) for g in group_runs(runs, size=64, workers=2)] == [50] * 4
    # 150 runs: three groups would leave one process with two and the other with one
    assert [len(g) for g in group_runs(_shaped((2, 150, 1000)), size=64, workers=2)] == [
        38,
        38,
        37,
        37,
    ]
    # a sweep smaller than a population still spreads over the processes ...
    assert [len(g) for g in group_runs(_shaped((2, 10, 1000)), size=64, workers=2)] == [5, 5]
    # ... but shapes that already fill the processes are not cut smaller (each population
    # costs its own per-epoch overhead)
    many = group_runs(_shaped(*((h, 10, 1000) for h in range(2, 12))), size=64, workers=2)
    assert [len(g) for g in many] == [10] * 10
    # longest first: the pool starts them in this order, the short ones fill the gaps
    mixed = group_runs(_shaped((2, 4, 100), (3, 40, 5000)), size=64, workers=2)
    assert [len(g) for g in mixed] == [20, 20, 2, 2]
    assert sorted(r for g in mixed for r in g) == list(range(44))
    assert all(len(g) <= 3 for g in group_runs(_shaped((2, 100, 10)), size=3, workers=2))


def test_group_run_ids_reads_the_database(db_url, monkeypatch):
    ids = _sweep(db_url, _configs(learning_rate=[0.1, 0.2, 0.3], epochs=5))
    ids += _sweep(db_url, _configs(hidden=[[3]], epochs=5))
    monkeypatch.setenv("BPLAB_POPULATION_SIZE", "4")
    with session_scope(db_url) as s:
        groups = group_run_ids(s, ids)
    assert groups == [ids[0:3], ids[3:6], ids[6:8]]
    monkeypatch.setenv("BPLAB_POPULATION_SIZE", "0")
    with pytest.raises(ValueError, match="BPLAB_POPULATION_SIZE"), session_scope(db_url) as s:
        group_run_ids(s, ids)


class FakeTimeLimit(Exception):
    """Raised asynchronously, as Celery raises SoftTimeLimitExceeded."""


def _time_limit_at(epoch: int):  # noqa: ANN202 - a should_stop callback
    """Raises FakeTimeLimit at the ``epoch``-th epoch of the task it is given to."""
    calls = []

    def check() -> bool:
        calls.append(1)
        if len(calls) == epoch:
            raise FakeTimeLimit("soft time limit")
        return False

    return check


def _handed_back(db_url, runs, epoch: int) -> tuple[list[int], list[int]]:
    """(reference, ids): ``runs`` trained through, and again as a task that a time limit
    stops at ``epoch``, which hands every run back to the queue."""
    ref = _sweep(db_url, runs)
    execute_runs(ref, url=db_url)
    ids = _sweep(db_url, runs)
    statuses = execute_runs(
        ids, url=db_url, should_stop=_time_limit_at(epoch), release_on=(FakeTimeLimit,)
    )
    assert set(statuses.values()) == {"queued"}
    return ref, ids


def _finish_as_the_reference(db_url, ref: list[int], ids: list[int]) -> None:
    assert set(execute_runs(ids, url=db_url).values()) == {"succeeded"}
    for a, b in zip(ref, ids, strict=True):
        _same_results(_result(db_url, a), _result(db_url, b))


def test_a_time_limit_hands_unfinished_runs_back_until_attempts_are_used(
    db_url, monkeypatch, caplog
):
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    monkeypatch.setenv("BPLAB_MAX_ATTEMPTS", "2")
    runs = _configs(learning_rate=[0.5, 1.0], epochs=300, log_every=5)
    ref, ids = _handed_back(db_url, runs, 120)
    with session_scope(db_url) as s:
        assert {repo.load_checkpoint(s, r)[0] for r in ids} == {100}  # the last checkpoint
        assert {repo.get_run(s, r).attempt for r in ids} == {1}
    # the next attempt resumes from the checkpoint (and says so in the worker's log, as a
    # single run does) and ends exactly where the reference did
    with caplog.at_level("INFO", logger="bplab.population"):
        _finish_as_the_reference(db_url, ref, ids)
    for r in ids:
        assert f"run {r}: attempt 2 resumes from its checkpoint at epoch 100" in caplog.text
    # attempts that checkpointed do not count: hit by the limit every 120 epochs, checkpointing
    # every 50, these runs take three attempts with BPLAB_MAX_ATTEMPTS at 2, and finish
    longer = _sweep(db_url, runs[:2])
    for expected in ("queued", "queued", "succeeded"):
        got = execute_runs(
            longer, url=db_url, should_stop=_time_limit_at(120), release_on=(FakeTimeLimit,)
        )
        assert set(got.values()) == {expected}
    # and a run that keeps hitting the limit with no new checkpoint fails after
    # BPLAB_MAX_ATTEMPTS attempts
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "1000")
    more = _sweep(db_url, runs[:2])
    for expected in ("queued", "failed"):
        got = execute_runs(
            more, url=db_url, should_stop=_time_limit_at(120), release_on=(FakeTimeLimit,)
        )
        assert set(got.values()) == {expected}
    with session_scope(db_url) as s:
        assert "gave up after 2 attempt(s)" in repo.get_run(s, more[0]).error


def test_a_time_limit_that_surfaces_as_a_cleanup_error_still_hands_back(db_url, monkeypatch):
    """Celery's soft limit can land inside a database call; the driver's cleanup then raises its
    own error while handling it. The runs still go back to the queue, not to 'failed'."""
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    runs = _configs(learning_rate=[0.5, 1.0], epochs=300, log_every=5)
    ids = _sweep(db_url, runs)
    limit = _time_limit_at(120)

    def limit_then_cleanup_error() -> bool:
        try:
            return limit()
        except FakeTimeLimit as exc:
            raise RuntimeError("can't change 'autocommit' now") from exc

    got = execute_runs(
        ids, url=db_url, should_stop=limit_then_cleanup_error, release_on=(FakeTimeLimit,)
    )
    assert set(got.values()) == {"queued"}
    with session_scope(db_url) as s:
        assert {repo.get_run(s, r).error for r in ids} == {None}
        assert {repo.load_checkpoint(s, r)[0] for r in ids} == {100}


def test_short_runs_skip_periodic_checkpoints_and_still_resume_exactly(db_url, monkeypatch):
    """By default a periodic checkpoint waits for BPLAB_CHECKPOINT_SECONDS of training since
    the run's last one: these runs take milliseconds, so none is taken, and a run handed back
    by a time limit starts again from epoch 0, ending exactly where the reference did."""
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    monkeypatch.setenv("BPLAB_CHECKPOINT_SECONDS", "3600")
    runs = _configs(learning_rate=[0.5, 1.0], epochs=300, log_every=5)
    ref, ids = _handed_back(db_url, runs, 120)
    with session_scope(db_url) as s:
        assert [repo.load_checkpoint(s, r) for r in ids] == [None] * len(ids)
    _finish_as_the_reference(db_url, ref, ids)


def test_cancelling_the_sweep_stops_its_runs_with_their_curve_so_far(db_url):
    from service.db import leases

    runs = _configs(learning_rate=[0.5, 1.0], epochs=2000, log_every=1)
    ids = _sweep(db_url, runs)
    with session_scope(db_url) as s:
        sweep_id = repo.get_run(s, ids[0]).sweep_id
    calls = []

    def cancel_at_epoch_50() -> bool:
        calls.append(1)
        if len(calls) == 50:
            with session_scope(db_url) as s:
                assert leases.cancel_runs(s, sweep_id)["running"] == len(ids)
        return False

    import service.execution.group as population

    hb = population.reliability.heartbeat_seconds
    population.reliability.heartbeat_seconds = lambda: 0.0  # a write, so a fence, every epoch
    try:
        statuses = execute_runs(ids, url=db_url, should_stop=cancel_at_epoch_50)
    finally:
        population.reliability.heartbeat_seconds = hb
    assert set(statuses.values()) == {"cancelled"}
    for rid in ids:
        r = _result(db_url, rid)
        assert r["summary"]["status"] == "cancelled"
        assert 50 <= r["summary"]["epochs_run"] <= 52
        assert [row[0] for row in r["rows"]] == list(range(1, r["summary"]["epochs_run"] + 1))
        assert r["summary"]["final_loss"] == r["rows"][-1][1]
