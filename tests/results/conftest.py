"""A real finished sweep to read results from: XOR, two learning rates x two hidden sizes.

learning_rate 2.0 solves XOR in about a third of the epochs 0.5 needs (with 3 hidden units
every seed solves at both rates), so `compare` has a pair where one side is clearly better;
with 2 hidden units some seeds at 2.0 end in a local minimum, so success rates differ.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Bplab

SEEDS = 10
SPEC = {
    "name": "lr-compare",
    "dataset": "xor",
    "seeds": SEEDS,
    "parameters": {
        "learning_rate": [0.5, 2.0],
        "hidden": [2, 3],
        "momentum": 0.9,
        "epochs": 1500,
        "stop_within": 0.5,
        "stop_on_solve": True,
        "log_every": 5,
    },
}
# A few seconds on any database: for tests that need a fresh sweep per database.
SMALL_SPEC = {
    "name": "small",
    "dataset": "xor",
    "seeds": 3,
    "parameters": {
        "learning_rate": [0.5, 2.0],
        "hidden": 2,
        "momentum": 0.9,
        "epochs": 400,
        "stop_within": 0.5,
        "log_every": 10,
    },
}


def run_sweep(bplab: Bplab, spec: dict, name: str = "spec.yaml") -> int:
    """Run spec through `bplab sweep run`; the new sweep's id."""
    before = {s["id"] for s in bplab.json("sweep", "list")}
    bplab("sweep", "run", str(bplab.write_spec(name, spec)), "--workers", "2")
    (new,) = {s["id"] for s in bplab.json("sweep", "list")} - before
    return new


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bplab, int]:
    """(bplab on a SQLite file, sweep id) of SPEC, run once per test module."""
    tmp: Path = tmp_path_factory.mktemp("results")
    bplab = Bplab(f"sqlite:///{tmp / 'bplab.db'}", tmp)
    return bplab, run_sweep(bplab, SPEC)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path
