"""A pruned population member is bit-identical to its lone run up to the epoch it stopped at."""

from __future__ import annotations

import numpy as np

from service.db import repository as repo
from service.db.session import session_scope
from service.execution import execute_run
from service.spec import parse_spec
from tests.pruning.helpers import epoch_rows, record, runs, train, xor_spec


def test_pruned_member_matches_its_lone_run(db_url: str) -> None:
    sweep_id, _ = train(db_url, xor_spec({"type": "asha", "min_epochs": 10, "unit": "run"}))
    pruned = [r for r in runs(db_url, sweep_id) if r["status"] == "pruned"]
    assert len(pruned) >= 3
    for r in pruned[:3]:
        with session_scope(db_url, readonly=True) as s:
            run = repo.get_run(s, r["id"])
            config, seed = dict(run.config), run.seed
            weights = repo.load_weights(s, r["id"])
        stop = r["pruned_epoch"]
        # the same configuration and seed, trained alone for exactly as many epochs
        params = {k: v for k, v in config.items() if k != "dataset"}
        lone_spec = parse_spec(
            {
                "dataset": config["dataset"],
                "seeds": [seed],
                "parameters": {**params, "epochs": stop},
            }
        )
        _, (lone_id,) = record(db_url, lone_spec)
        assert execute_run(lone_id, url=db_url) == "succeeded"
        mine, alone = epoch_rows(db_url, r["id"]), epoch_rows(db_url, lone_id)
        assert [row[0] for row in mine] == list(range(1, stop + 1))
        np.testing.assert_array_equal(
            np.array([row[1:] for row in mine], dtype=float),
            np.array([row[1:] for row in alone], dtype=float),
        )
        with session_scope(db_url, readonly=True) as s:
            lone_weights = repo.load_weights(s, lone_id)
        for a, b in zip(weights, lone_weights, strict=True):
            np.testing.assert_array_equal(a, b)
