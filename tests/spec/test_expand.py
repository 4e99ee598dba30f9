"""Expanding specs into runs: grid order, duplicates, seeds, random draws."""

from __future__ import annotations

import math

import pytest

from service.spec import parse_spec


def grid(seeds: object = 1, **params: object):
    return parse_spec({"dataset": "xor", "seeds": seeds, "parameters": params})


def random(samples: int, sampler_seed: int = 0, seeds: object = 1, **params: object):
    data = {"dataset": "xor", "method": "random", "samples": samples, "sampler_seed": sampler_seed}
    return parse_spec({**data, "seeds": seeds, "parameters": params})


def test_grid_order_configs_outer_seeds_inner() -> None:
    spec = grid(seeds=[7, 3], learning_rate=[0.1, 0.5], hidden=[2, [4, 4]])
    runs = spec.expand()
    assert spec.count_configs() == 4
    assert spec.count_runs() == len(runs) == 8
    got = [(r.config["learning_rate"], r.config["hidden"], r.seed, r.config_index) for r in runs]
    assert got == [
        (0.1, [2], 7, 0), (0.1, [2], 3, 0), (0.1, [4, 4], 7, 1), (0.1, [4, 4], 3, 1),
        (0.5, [2], 7, 2), (0.5, [2], 3, 2), (0.5, [4, 4], 7, 3), (0.5, [4, 4], 3, 3),
    ]  # fmt: skip
    assert spec.swept == ["learning_rate", "hidden"]
    assert [r.config for r in runs[::2]] == spec.configs()


def test_the_first_listed_parameter_varies_slowest() -> None:
    spec = grid(hidden=[2, 3], learning_rate=[0.1, 0.5])
    got = [(c["hidden"], c["learning_rate"]) for c in spec.configs()]
    assert got == [([2], 0.1), ([2], 0.5), ([3], 0.1), ([3], 0.5)]
    assert spec.swept == ["hidden", "learning_rate"]


def test_duplicate_configurations_run_once() -> None:
    spec = grid(
        seeds=2, hidden=[2, [2], 2.0, [3]], learning_rate=[1, 1.0, 0.5], cost=["sse", "sse"]
    )
    configs = spec.configs()
    assert [(c["hidden"], c["learning_rate"]) for c in configs] == [
        ([2], 1.0), ([2], 0.5), ([3], 1.0), ([3], 0.5),
    ]  # fmt: skip
    assert spec.count_runs() == len(spec.expand()) == 8
    assert "cost" not in spec.swept


def test_one_value_lists_are_not_swept() -> None:
    spec = grid(learning_rate=[0.3], hidden=[[4, 4]], momentum=[0.5, 0.9])
    assert spec.swept == ["momentum"]
    assert {tuple(c["hidden"]) for c in spec.configs()} == {(4, 4)}


def test_estimate_epochs_is_the_no_early_stop_total() -> None:
    spec = grid(seeds=2, epochs=[100, 200], learning_rate=[0.1, 0.5, 1.0])
    assert spec.estimate_epochs() == (100 + 200) * 3 * 2
    assert spec.estimate_epochs() == sum(r.config["epochs"] for r in spec.expand())


def test_random_is_reproducible_and_seeded() -> None:
    params = {
        "learning_rate": {"distribution": "log_uniform", "min": 0.01, "max": 10},
        "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.95},
        "hidden": [2, 3, [4, 4]],
    }
    first = random(20, 1, **params)
    assert first.configs() == random(20, 1, **params).configs()
    assert first.configs() != random(20, 2, **params).configs()
    # The order the spec lists its parameters in does not change the draws.
    reordered = dict(reversed(list(params.items())))
    assert random(20, 1, **reordered).configs() == first.configs()
    assert first.count_configs() == 20
    assert first.count_runs() == 20
    assert first.swept == ["learning_rate", "momentum", "hidden"]


def test_random_mixes_fixed_values_choices_and_distributions() -> None:
    spec = random(
        40,
        seeds=[4, 5],
        epochs=300,
        cost=["sse", "mse"],
        activation={"values": ["tanh", "relu"]},
        weight_decay={"distribution": "uniform", "min": 0.0, "max": 0.01},
    )
    configs = spec.configs()
    assert {c["epochs"] for c in configs} == {300}
    assert {c["cost"] for c in configs} == {"sse", "mse"}
    assert {c["activation"] for c in configs} == {"tanh", "relu"}
    assert all(0.0 <= c["weight_decay"] <= 0.01 for c in configs)
    runs = spec.expand()
    assert [r.seed for r in runs[:4]] == [4, 5, 4, 5]
    assert spec.estimate_epochs() == 300 * len(configs) * 2


def test_log_uniform_spans_the_decades() -> None:
    spec = random(300, learning_rate={"distribution": "log_uniform", "min": 1e-4, "max": 1.0})
    rates = [c["learning_rate"] for c in spec.configs()]
    assert all(1e-4 <= r <= 1.0 for r in rates)
    decades = [math.floor(math.log10(r)) for r in rates if r < 1.0]
    counts = [decades.count(d) for d in (-4, -3, -2, -1)]
    # 75 expected per decade; a plain uniform draw would put ~90% in the last one.
    assert all(40 <= n <= 110 for n in counts), counts


def test_int_uniform_draws_integers_including_both_ends() -> None:
    spec = random(
        200,
        epochs={"distribution": "int_uniform", "min": 10, "max": 13},
        batch_size={"distribution": "int_uniform", "min": 1, "max": 4},
    )
    epochs = [c["epochs"] for c in spec.configs()]
    assert all(isinstance(e, int) for e in epochs)
    assert set(epochs) == {10, 11, 12, 13}
    assert {c["batch_size"] for c in spec.configs()} == {1, 2, 3, 4}


def test_integer_parameters_round_continuous_draws() -> None:
    spec = random(100, hidden={"distribution": "log_uniform", "min": 2, "max": 64})
    sizes = [c["hidden"] for c in spec.configs()]
    assert all(len(h) == 1 and isinstance(h[0], int) and 2 <= h[0] <= 64 for h in sizes)
    assert len({h[0] for h in sizes}) > 10


def test_identical_random_draws_run_once() -> None:
    spec = random(50, seeds=3, cost=["sse", "mse"])
    assert sorted(c["cost"] for c in spec.configs()) == ["mse", "sse"]
    assert spec.count_runs() == 6


def test_random_with_nothing_varying_is_one_config() -> None:
    spec = random(5, learning_rate=0.2)
    assert spec.count_configs() == 1
    assert spec.swept == []


@pytest.mark.parametrize("seeds", [1, 5, [9, 2, 4]])
def test_runs_cover_every_seed_for_every_config(seeds: object) -> None:
    spec = grid(seeds=seeds, hidden=[1, 2])
    runs = spec.expand()
    expected = list(range(seeds)) if isinstance(seeds, int) else seeds
    assert [r.seed for r in runs] == expected * 2
