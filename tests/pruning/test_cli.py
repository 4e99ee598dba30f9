"""early_terminate through the CLI: a bad rule is one line and exit 2; plan's epoch budget;
show/results/runs count pruned runs; retry --pruned trains them to the end."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Bplab, small_xor_spec
from tests.pruning.helpers import LEARNING_RATES


@pytest.fixture
def bplab(tmp_path) -> Bplab:
    return Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)


def _spec(rule: object) -> dict:
    spec = small_xor_spec(early_terminate=rule, seeds=2)
    spec["parameters"].update(learning_rate=LEARNING_RATES, stop_within=None, log_every=1)
    return spec


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("asha", "early_terminate: must be a mapping"),
        ({"type": "sha", "min_epochs": 5}, "early_terminate.type: must be one of"),
        ({"type": "asha"}, "early_terminate.min_epochs: missing"),
        ({"type": "asha", "min_epochs": 0}, "early_terminate.min_epochs: must be an integer >= 1"),
        ({"type": "asha", "min_epochs": 300}, "must be below the runs' epochs (300)"),
        ({"type": "asha", "min_epochs": 5, "metric": "val_loss"}, "needs parameters.validation"),
        ({"type": "median", "min_epochs": 5, "reduction_factor": 3}, "only used with type: asha"),
        ({"type": "asha", "min_epochs": 5, "brackets": 2}, "only used with type: hyperband"),
        ({"type": "asha", "min_epochs": 5, "unit": "seed"}, "early_terminate.unit: must be one"),
        ({"type": "asha", "min_epochs": 5, "eta": 3}, "did you mean"),
    ],
)
def test_a_bad_rule_is_one_line_and_exit_2(bplab: Bplab, rule: object, message: str) -> None:
    spec = bplab.write_spec("bad.yaml", _spec(rule))
    for command in ("plan", "run"):
        result = bplab("sweep", command, str(spec), expect=2)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.output
    assert not (bplab.cwd / "bplab.db").exists()  # nothing written


def test_plan_run_show_results_and_retry_pruned(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", _spec({"type": "asha", "min_epochs": 10}))
    plan = bplab("sweep", "plan", str(spec)).stdout
    assert "early_terminate asha on loss (unit: config): 4,800 epochs at worst, about" in plan
    bplab("sweep", "run", str(spec), "--workers", "1")
    show = (
        {r["field"]: r["value"] for r in bplab.json("sweep", "show", "1")[0].items()}
        if False
        else bplab.json("sweep", "show", "1")[0]
    )
    assert show["runs_pruned"] >= 8 and show["configs_pruned"] >= 4
    assert " of 4,800 (" in show["epochs_trained"]
    results = bplab.json("results", "1")
    assert sum(row["pruned"] for row in results) == show["runs_pruned"]
    pruned = bplab.json("runs", "1", "--status", "pruned")
    assert len(pruned) == show["runs_pruned"]
    assert all(
        r["pruned_epoch"] in (10, 30, 90) and r["epochs_run"] == r["pruned_epoch"] for r in pruned
    )

    bplab("sweep", "retry", "1", "--pruned", "--workers", "1")
    after = bplab.json("runs", "1")
    again = [r for r in after if r["id"] in {p["id"] for p in pruned}]
    assert all(r["status"] == "succeeded" and r["epochs_run"] == 300 for r in again)
    assert all(r["pruned_epoch"] is None for r in again)
    assert bplab.json("sweep", "show", "1")[0]["runs_pruned"] == 0
