"""asha, hyperband and median on a grid where most configurations are poor (both databases)."""

from __future__ import annotations

import pytest

from service.db import repository as repo
from service.db.session import session_scope
from service.execution import execute_runs
from tests.pruning.helpers import (
    best_rate,
    epoch_rows,
    pruned_configs,
    record,
    runs,
    train,
    xor_spec,
)

ASHA = {"type": "asha", "min_epochs": 10, "reduction_factor": 3}


def test_asha_prunes_the_poor_configurations_and_keeps_the_best(db_url: str) -> None:
    _, _ = train(db_url, xor_spec(None))
    full = runs(db_url, 1)
    sweep_id, _ = train(db_url, xor_spec(ASHA))
    rows = runs(db_url, sweep_id)

    kept = [r for r in rows if r["status"] == "succeeded"]
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert len(pruned) >= len(rows) * 2 // 3
    assert best_rate(kept) == best_rate(full)
    assert sum(r["epochs_run"] for r in rows) <= sum(r["epochs_run"] for r in full) / 3
    # unit: config: the seeds of a configuration stop together, with the same decision
    by_config: dict[str, set] = {}
    for r in rows:
        by_config.setdefault(r["config_key"], set()).add(
            (r["status"], r["pruned_epoch"], r["pruned_value"], r["pruned_threshold"])
        )
    assert all(len(v) == 1 for v in by_config.values())
    decided = pruned_configs(db_url, sweep_id)
    for r in pruned:
        assert r["pruned_epoch"] in (10, 30, 90, 270)  # the rungs: 10 * 3**k below 300
        assert r["epochs_run"] == r["pruned_epoch"] == decided[r["config_key"]]
        assert r["pruned_value"] > r["pruned_threshold"]  # loss: it missed by being higher
        rows_kept = epoch_rows(db_url, r["id"])  # its curve is kept, up to where it stopped
        assert [e for e, *_ in rows_kept] == list(range(1, r["pruned_epoch"] + 1))
        with session_scope(db_url, readonly=True) as s:
            assert repo.load_weights(s, r["id"])  # and its weights
    for r in kept:
        assert r["pruned_epoch"] is None and r["epochs_run"] == 300


def test_seeds_claimed_later_stop_at_once(db_url: str) -> None:
    """unit: config across populations: the other seeds of a pruned configuration, claimed
    by a later task (another worker, say), finish as pruned without training."""
    sweep_id, ids = record(db_url, xor_spec(ASHA, seeds=2))
    rows = runs(db_url, sweep_id)
    first = [r["id"] for r in rows if r["seed"] == 0]
    execute_runs(first, url=db_url)
    statuses = execute_runs([r["id"] for r in rows if r["seed"] == 1], url=db_url)
    after = {r["id"]: r for r in runs(db_url, sweep_id)}
    for r in rows:
        if r["seed"] != 1 or after[r["id"] - 1]["status"] != "pruned":
            continue
        if after[r["id"] - 1]["pruned_epoch"] == 10:  # decided before seed 1 started
            assert statuses[r["id"]] == "pruned"
            assert after[r["id"]]["epochs_run"] == 0
            assert epoch_rows(db_url, r["id"]) == []


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "hyperband", "min_epochs": 10, "reduction_factor": 3, "brackets": 2},
        {"type": "median", "min_epochs": 25},
        {"type": "asha", "min_epochs": 10, "unit": "run"},
    ],
)
def test_other_rules_keep_the_best(tmp_path, rule: dict) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    from service.db.migrate import upgrade_engine
    from service.db.session import make_engine

    upgrade_engine(make_engine(url))
    train(url, xor_spec(None))
    sweep_id, _ = train(url, xor_spec(rule))
    rows = runs(url, sweep_id)
    assert any(r["status"] == "pruned" for r in rows)
    assert best_rate([r for r in rows if r["status"] == "succeeded"]) == best_rate(runs(url, 1))
    for r in rows:
        if r["status"] == "pruned":
            assert r["epochs_run"] == r["pruned_epoch"] < 300
