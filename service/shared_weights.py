"""Building the nets whose weights are shared (engine.tied, engine.recurrent) from a run's
configuration.

Their shape comes partly from the dataset: a tied layer needs the retina's height and
width (a dataset's ``retina``, else a square image: 64 inputs are 8x8), a recurrent net
the number of steps of a sequence dataset (its ``steps``). Both are read from the dataset
here, so that a run, ``bplab inspect`` and the spec check build the same net.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine import Dataset, Network
from service.datasets import cached_dataset


def shares_weights(config: Mapping[str, Any]) -> bool:
    """True for a tied or recurrent net: trained alone, never stacked into a population."""
    return bool(config.get("kernels")) or bool(config.get("recurrent"))


def retina_of(n_inputs: int, meta: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of an image dataset; ValueError when its inputs are no image."""
    if "retina" in meta:
        height, width = meta["retina"]  # type: ignore[misc]
        return int(height), int(width)
    side = math.isqrt(n_inputs)
    if side * side != n_inputs:
        raise ValueError(
            f"kernels needs an image: the dataset's {n_inputs} inputs are not a square "
            "retina (and the dataset names no retina)"
        )
    return side, side


def steps_of(dataset: Dataset) -> int:
    """The number of time steps of a sequence dataset; ValueError for any other."""
    steps = dataset.meta.get("steps")
    if not isinstance(steps, int):
        raise ValueError(
            f"recurrent needs a sequence dataset (one that has time steps), not {dataset.name}"
        )
    return steps


def shared_network(config: Mapping[str, Any], rng: np.random.Generator) -> Network:
    """The untrained tied or recurrent net of ``config``; ``rng`` draws its weights."""
    from engine.recurrent import RecurrentNetwork
    from engine.tied import TiedNetwork

    data = cached_dataset(config["dataset"])
    n_in, n_out = data.X.shape[1], data.Y.shape[1]
    common = {
        "activation": config["activation"],
        "output_activation": config["output_activation"],
        "cost": config["cost"],
        "init": config["init"],
        "rng": rng,
        "dtype": config.get("dtype", "float64"),  # runs from before dtype existed: float64
    }
    if config.get("kernels") and config.get("recurrent"):
        raise ValueError("kernels and recurrent do not go together (one or the other)")
    if config.get("kernels"):
        return TiedNetwork(
            retina_of(n_in, data.meta),
            int(config["kernels"]),
            list(config.get("hidden") or []),
            n_out,
            field=int(config.get("field", 3)),
            wrap=bool(config.get("wrap", False)),
            **common,
        )
    steps = steps_of(data)
    hidden = list(config.get("hidden") or [])
    if len(hidden) != 1:
        raise ValueError(f"recurrent needs exactly one hidden layer, got hidden: {hidden}")
    return RecurrentNetwork(n_in // steps, hidden[0], n_out // steps, steps, **common)
