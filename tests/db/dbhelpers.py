"""Shared helpers of the database tests (importable: tests/db is on sys.path)."""

from __future__ import annotations

from typing import Any


def full_config(**overrides: Any) -> dict[str, Any]:
    """A complete run configuration as service/spec.py produces it (common.md)."""
    config: dict[str, Any] = {
        "dataset": "xor",
        "hidden": [2],
        "learning_rate": 0.5,
        "momentum": 0.9,
        "cost": "sse",
        "activation": "sigmoid",
        "output_activation": "sigmoid",
        "optimizer": "sgd",
        "batch_size": "full",
        "epochs": 100,
        "init": 0.3,
        "weight_decay": 0.0,
        "skip_connections": False,
        "stop_loss": None,
        "stop_within": 0.5,
        "stop_on_solve": False,
        "validation_split": 0.0,
        "log_every": 1,
        "schedule": [],
    }
    config.update(overrides)
    return config
