"""Building a run's network from its configuration, including fixed connectivity.

The family-trees net of Hinton (1986) is not fully layered: its 24 person inputs feed
one group of 6 hidden units and its 12 relation inputs another. A run configuration
says so with ``input_groups: [24, 12]`` and ``group_hidden: [6, 6]``; the first hidden
layer (of size ``sum(group_hidden)``) is then block-connected, input group g to hidden
group g, and every later layer is full. The runner builds every network here so that
a config trains the same net wherever it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine import Network, group_mask


def first_layer_mask(config: Mapping[str, Any], n_in: int) -> np.ndarray | None:
    """The (n_in, hidden[0]) bool mask of the first layer, or None when it is full.

    Raises ValueError when the groups do not fit the data or the hidden layer: the spec
    checks this already where it can, but a csv/npz file's width is only known here.
    """
    groups, hidden_groups = config.get("input_groups"), config.get("group_hidden")
    if not groups and not hidden_groups:
        return None
    if not groups or not hidden_groups:
        raise ValueError("input_groups and group_hidden go together: set both or neither")
    hidden = list(config.get("hidden") or [])
    if sum(groups) != n_in:
        raise ValueError(
            f"input_groups {list(groups)} add up to {sum(groups)}, but the dataset has "
            f"{n_in} inputs"
        )
    if not hidden or hidden[0] != sum(hidden_groups):
        raise ValueError(
            f"group_hidden {list(hidden_groups)} adds up to {sum(hidden_groups)}, but the "
            f"first hidden layer has {hidden[0] if hidden else 'no'} units"
        )
    return group_mask(groups, hidden_groups)


def network_from_config(
    config: Mapping[str, Any], n_in: int, n_out: int, rng: np.random.Generator
) -> Network:
    """The untrained network of a run configuration; ``rng`` draws its initial weights.
    A tied or recurrent net takes its shape from the dataset (service.shared_weights)."""
    from service.shared_weights import shared_network, shares_weights

    if shares_weights(config):
        return shared_network(config, rng)
    mask = first_layer_mask(config, n_in)
    return Network(
        [n_in, *config["hidden"], n_out],
        activation=config["activation"],
        output_activation=config["output_activation"],
        cost=config["cost"],
        skip_connections=config["skip_connections"],
        init=config["init"],
        rng=rng,
        masks=None if mask is None else {0: mask},
        dtype=config.get("dtype", "float64"),  # runs from before dtype existed: float64
    )


def network_with_weights(config: Mapping[str, Any], arrays: list[np.ndarray]) -> Network:
    """A run's net rebuilt from its config and its stored final weights (W1, b1, W2, ...)."""
    n_in, n_out = int(arrays[0].shape[0]), int(arrays[-1].shape[0])
    # The initial weights do not matter (they are overwritten); the rng only builds the net.
    net = network_from_config(config, n_in, n_out, np.random.default_rng(0))
    net.set_params(arrays)
    return net
