"""Issue 18 item 9: validation figures in results and compare, no "solved 0%" when solving is
not tracked, compare's printed-value and range filters, unlike runs refused, --by a,a."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.cli.conftest import Bplab
from tests.results.conftest import run_sweep

# parity:4 has 16 patterns: a quarter held out leaves 12 to train on and 4 to validate.
SPEC = {
    "name": "val",
    "dataset": "parity:4",
    "seeds": 2,
    "parameters": {
        "learning_rate": [0.123456, 2.0],
        "hidden": 4,
        "epochs": 60,
        "validation_split": 0.25,
        "stop_within": None,
    },
}


@pytest.fixture
def bp(db_url: str, tmp_path: Path) -> Bplab:
    return Bplab(db_url, tmp_path)


def test_results_show_validation_and_no_solved_column(bp: Bplab) -> None:
    sweep = run_sweep(bp, SPEC)
    table = bp("results", str(sweep), "--wide").stdout
    assert "val loss" in table and "val acc" in table
    assert "solved" not in table and "0%" not in table
    rows = bp.json("results", str(sweep))
    assert all(r["success_rate"] is None for r in rows)
    assert all(r["val_loss_mean"] is not None for r in rows)
    assert all(0.0 <= r["val_accuracy_mean"] <= 1.0 for r in rows)


def test_by_twice_lists_the_parameter_once(bp: Bplab) -> None:
    sweep = run_sweep(bp, SPEC)
    out = bp("results", str(sweep), "--by", "learning_rate,learning_rate", "--format", "csv")
    header = next(csv.reader(io.StringIO(out.stdout)))
    assert header.count("learning_rate") == 1


def test_compare_filters_as_printed_and_ranges(bp: Bplab) -> None:
    sweep = run_sweep(bp, SPEC)
    # the results table prints 0.123456 as 0.1235
    assert "0.1235" in bp("results", str(sweep)).stdout
    printed = bp.json(
        "compare", str(sweep), "--a", "learning_rate=0.1235", "--b", "learning_rate=2"
    )
    ranged = bp.json(
        "compare",
        str(sweep),
        "--a",
        "learning_rate<0.3",
        "--b",
        "learning_rate>=1",
        "--metric",
        "val_loss",
        "--metric",
        "val_accuracy",
    )
    assert printed[0]["pairs"] == 2 and ranged[0]["pairs"] == 2
    assert [m["metric"] for m in ranged[0]["metrics"]] == ["val_loss", "val_accuracy"]
    assert all(m["n_pairs"] == 2 for m in ranged[0]["metrics"])
    bad = bp("compare", str(sweep), "--a", "learning_rate<fast", "--b", "learning_rate=2", expect=2)
    assert bad.output.count("\n") == 1 and "needs a number" in bad.output


def test_compare_refuses_different_costs(bp: Bplab) -> None:
    sse = run_sweep(bp, SPEC, "sse.yaml")
    mse_spec = {**SPEC, "parameters": {**SPEC["parameters"], "cost": "mse"}}
    mse = run_sweep(bp, mse_spec, "mse.yaml")
    out = bp(
        "compare",
        str(sse),
        "--a",
        "learning_rate=2",
        "--sweep-b",
        str(mse),
        "--b",
        "learning_rate=2",
        expect=2,
    )
    assert "differ in cost" in out.output and out.output.count("\n") == 1
