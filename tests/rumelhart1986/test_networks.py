"""service.networks: a run configuration's network, incl. the family-trees block layer."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Network, TrainConfig, load_dataset, train
from service.networks import first_layer_mask, network_from_config
from service.spec import parse_spec

FAMILY = {
    "hidden": [[12, 12, 6]],
    "input_groups": [24, 12],
    "group_hidden": [6, 6],
    "learning_rate": 0.005,
    "epochs": 30,
}


def _config(dataset: str, **params: object) -> dict:
    return parse_spec({"dataset": dataset, "parameters": params}).configs()[0]


def test_family_trees_net_has_block_connected_first_layer() -> None:
    config = _config("family_trees", **FAMILY)
    net = network_from_config(config, 36, 24, np.random.default_rng(3))
    assert net.layer_sizes == (36, 12, 12, 6, 24)
    W1 = net.params[0]
    assert W1.shape == (36, 12)
    # person units (rows 0-23) reach only h1.1-h1.6, relation units (24-35) only h1.7-h1.12
    assert np.all(W1[:24, 6:] == 0) and np.all(W1[24:, :6] == 0)
    assert np.all(W1[:24, :6] != 0) and np.all(W1[24:, 6:] != 0)
    assert net.masks[0].sum() == 24 * 6 + 12 * 6
    assert all(m is None for m in net.masks[1:])
    # training keeps the missing connections missing
    data = load_dataset("family_trees")
    train(net, data.X, data.Y, TrainConfig.from_dict(config), rng=np.random.default_rng(3))
    W1 = net.params[0]
    assert np.all(W1[:24, 6:] == 0) and np.all(W1[24:, :6] == 0)
    assert np.abs(W1[:24, :6]).sum() > 0


def test_without_groups_it_is_the_plain_network_bit_for_bit() -> None:
    config = _config("symmetry:6", hidden=2, init=0.3)
    net = network_from_config(config, 6, 1, np.random.default_rng(7))
    plain = Network([6, 2, 1], init=0.3, rng=np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(net.params, plain.params, strict=True))
    assert first_layer_mask(config, 6) is None


@pytest.mark.parametrize(
    "change, n_in, message",
    [
        ({"input_groups": [24, 10]}, 36, "add up to 34, but the dataset has 36"),
        ({"hidden": [10, 6]}, 36, "first hidden layer has 10"),
        ({"group_hidden": None}, 36, "set both or neither"),
    ],
)
def test_groups_that_do_not_fit_are_errors(change: dict, n_in: int, message: str) -> None:
    # e.g. a csv dataset whose width the spec could not know
    config = {**_config("family_trees", **FAMILY), **change}
    with pytest.raises(ValueError, match=message):
        network_from_config(config, n_in, 24, np.random.default_rng(0))
