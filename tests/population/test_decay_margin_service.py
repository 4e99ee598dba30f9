"""decay, decay_biases and error_margin swept like any parameter: their runs share a
population, each recorded exactly as if trained alone, and a stopped sweep resumes to the
uninterrupted numbers."""

from __future__ import annotations

from service.execution import execute_run, execute_runs
from service.grouping import group_runs, shape_key
from tests.population.test_population_service import _configs, _result, _same_results, _sweep

SWEPT = dict(
    dataset="xor",
    hidden=2,
    init=1.0,
    learning_rate=1.0,
    decay=[0.0, 0.002],
    decay_biases=[True, False],
    error_margin=[0.0, 0.3],
    epochs=150,
    log_every=3,
)


def test_swept_values_reach_the_configs_and_share_a_shape() -> None:
    runs = _configs(**SWEPT)
    assert len(runs) == 2 * 2 * 2 * 2  # three swept keys x two seeds
    assert {(c["decay"], c["decay_biases"], c["error_margin"]) for c, _ in runs} == {
        (d, b, m) for d in (0.0, 0.002) for b in (True, False) for m in (0.0, 0.3)
    }
    assert len({shape_key(c, seed) for c, seed in runs}) == 1
    groups = group_runs(((i, c, s) for i, (c, s) in enumerate(runs)), size=64)
    assert groups == [list(range(len(runs)))]


def test_population_records_each_run_as_if_trained_alone(db_url) -> None:
    runs = _configs(**SWEPT)
    alone = _sweep(db_url, runs)
    together = _sweep(db_url, runs)
    for rid in alone:
        execute_run(rid, url=db_url)
    statuses = execute_runs(together, url=db_url, worker="pop")
    assert set(statuses.values()) == {"succeeded"}
    results = [_result(db_url, b) for b in together]
    for a, b in zip(alone, results, strict=True):
        _same_results(_result(db_url, a), b)
    # the settings change the numbers: per seed, each margin and each decay (with or without
    # the biases) its own; without decay, decay_biases has nothing to act on
    final = {
        (c["decay"], c["decay_biases"], c["error_margin"], seed): r["summary"]["final_loss"]
        for (c, seed), r in zip(runs, results, strict=True)
    }
    for seed in (0, 1):
        for m in (0.0, 0.3):
            assert final[(0.0, True, m, seed)] == final[(0.0, False, m, seed)]
        distinct = {final[(d, b, m, seed)] for d in (0.0, 0.002) for b in (True, False)
                    for m in (0.0, 0.3) if d or b}  # fmt: skip
        assert len(distinct) == 6


def test_stopped_sweep_resumes_to_the_uninterrupted_numbers(db_url, monkeypatch) -> None:
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "10")
    runs = _configs(**SWEPT)
    ref = _sweep(db_url, runs)
    ids = _sweep(db_url, runs)
    execute_runs(ref, url=db_url)
    calls: list[int] = []

    def stop_after_35() -> bool:
        calls.append(1)
        return len(calls) >= 35

    statuses = execute_runs(ids, url=db_url, should_stop=stop_after_35)
    assert set(statuses.values()) == {"queued"}
    assert set(execute_runs(ids, url=db_url).values()) == {"succeeded"}
    for a, b in zip(ref, ids, strict=True):
        _same_results(_result(db_url, a), _result(db_url, b))
