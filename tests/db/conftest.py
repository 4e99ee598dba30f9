"""Fixtures for the database tests: a sweep factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dbhelpers import full_config
from sqlalchemy.orm import Session

from service.db import repository as repo


@pytest.fixture
def make_sweep(session: Session) -> Callable[..., int]:
    """make_sweep(configs=None, seeds=2) -> committed sweep id with len(configs) * seeds runs."""

    def make(configs: list[dict[str, Any]] | None = None, seeds: int = 2) -> int:
        configs = configs if configs is not None else [full_config()]
        sweep_id = repo.create_sweep(
            session,
            name="t",
            dataset=configs[0]["dataset"] if configs else "xor",
            method="grid",
            spec={"dataset": "xor", "parameters": {}},
            swept=["learning_rate"],
            backend="local",
            runs=[{"config": c, "seed": s} for c in configs for s in range(seeds)],
        )
        session.commit()
        return sweep_id

    return make
