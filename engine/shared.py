"""Rebuilding a saved net with shared weights (``Network.load`` of a tied or recurrent net)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .network import Network
from .recurrent import RecurrentNetwork
from .tied import TiedNetwork


def from_architecture(arch: Mapping[str, Any], dtype: Any = "float64") -> Network:
    """An untrained net of the shape ``architecture()`` described (weights to be set), in
    ``dtype`` (the saved weights': the architecture does not name it)."""
    common = {
        "activation": arch["activation"],
        "output_activation": arch["output_activation"],
        "cost": arch["cost"],
        "rng": np.random.default_rng(0),  # the weights are overwritten by the caller
        "dtype": dtype,
    }
    if arch["kind"] == "tied":
        return TiedNetwork(
            arch["retina"],
            arch["kernels"],
            arch["hidden"],
            arch["layer_sizes"][-1],
            field=arch["field"],
            wrap=arch["wrap"],
            **common,
        )
    if arch["kind"] == "recurrent":
        step_in, units, step_out = arch["layer_sizes"]
        return RecurrentNetwork(step_in, units, step_out, arch["steps"], **common)
    raise ValueError(f"unknown kind of network {arch['kind']!r}")
