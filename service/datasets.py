"""Datasets as the runner needs them: loaded once per process, split by the run's seed."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from engine import Dataset, load_dataset


@lru_cache(maxsize=16)
def cached_dataset(name: str) -> Dataset:
    """A process trains many runs on the same dataset: generate or read it once."""
    from service.targets import split_targets  # csv target columns ride in the name

    base, targets = split_targets(name)
    return load_dataset(name) if targets is None else load_dataset(base, targets=targets)


def training_data(
    config: dict[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """(X, Y, validation) for a run; validation is None unless the config asks for a split.

    The split depends on the seed only, so runs with the same seed see the same split whatever
    their other parameters: comparisons across configurations stay paired.
    """
    data = cached_dataset(config["dataset"])
    fraction = float(config.get("validation_split") or 0.0)
    if fraction <= 0:
        return data.X, data.Y, None
    train_part, val_part = data.split(fraction, np.random.default_rng([seed, 1]))
    return train_part.X, train_part.Y, (val_part.X, val_part.Y)
