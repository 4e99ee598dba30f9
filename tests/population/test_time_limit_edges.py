"""Where a time limit can land besides the middle of training. Before a population trains
(while its members are built, their data loaded): every member goes back, as during training;
it used to fail the member being built (the limit caught as that run's own error) and let the
others train on past the limit. In a task of several shapes (several populations, one after
the other): the ones after it go back untrained; they used to train on past the limit."""

from __future__ import annotations

import pytest

from service.db import repository as repo
from service.db.session import session_scope
from service.execution import execute_runs
from service.execution import group as population
from tests.population.test_population_service import (
    FakeTimeLimit,
    _configs,
    _result,
    _same_results,
    _sweep,
    _time_limit_at,
)


@pytest.mark.parametrize("at_call", [2, 5])  # a member's build; the population's data after
def test_a_limit_while_building_hands_every_member_back(db_url, monkeypatch, at_call):
    runs = _configs(learning_rate=[0.5, 1.0], epochs=30)  # 2 configs x 2 seeds, one population
    ref = _sweep(db_url, runs)
    execute_runs(ref, url=db_url)
    ids = _sweep(db_url, runs)
    calls = []
    load = population.training_data

    def limited(config, seed):  # noqa: ANN001, ANN202 - stands in for training_data
        calls.append(seed)
        if len(calls) == at_call:
            raise FakeTimeLimit("soft time limit")
        return load(config, seed)

    monkeypatch.setattr(population, "training_data", limited)
    got = execute_runs(ids, url=db_url, release_on=(FakeTimeLimit,))
    assert got == dict.fromkeys(ids, "queued")
    with session_scope(db_url) as s:
        assert {repo.get_run(s, r).error for r in ids} == {None}
    monkeypatch.setattr(population, "training_data", load)
    assert set(execute_runs(ids, url=db_url).values()) == {"succeeded"}
    for a, b in zip(ref, ids, strict=True):  # and end exactly as runs never interrupted
        _same_results(_result(db_url, a), _result(db_url, b))


def test_a_limit_in_one_population_hands_back_the_next_ones_untrained(db_url):
    runs = _configs(hidden=[[2], [3]], epochs=200)  # two shapes: two populations in one task
    ids = _sweep(db_url, runs)
    got = execute_runs(ids, url=db_url, should_stop=_time_limit_at(50), release_on=(FakeTimeLimit,))
    assert got == dict.fromkeys(ids, "queued")
    with session_scope(db_url) as s:
        trained = {r: len(repo.epoch_rows(s, r)) for r in ids}
    assert sorted(trained.values()) == [0, 0, 50, 50]  # the second population never started
    assert set(execute_runs(ids, url=db_url).values()) == {"succeeded"}
