"""The specs under examples/rumelhart1986: the paper's settings, enough seeds, 0.8/0.2 solving.

(tests/spec/test_examples.py already checks that every example validates.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.spec import load_spec

DIR = Path(__file__).resolve().parents[2] / "examples" / "rumelhart1986"
SPECS = sorted(DIR.glob("*.yaml"))
EXPERIMENTS = {
    "symmetry", "xor_direct", "xor_221", "parity4", "encoder838", "negation", "addition2",
    "family_trees", "family_trees_adjusted",
}  # fmt: skip


def test_one_spec_per_experiment() -> None:
    assert {p.stem for p in SPECS} == EXPERIMENTS


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_paper_method(path: Path) -> None:
    spec = load_spec(path)
    assert len(spec.seeds) >= 50
    for config in spec.configs():
        assert config["stop_within"] == 0.2  # on-units above 0.8, off-units below 0.2
        assert config["batch_size"] == "full" and config["optimizer"] == "sgd"
        assert config["activation"] == config["output_activation"] == "sigmoid"
        if path.stem != "family_trees_adjusted":
            assert config["cost"] == "sse"


def test_symmetry_and_xor_settings() -> None:
    (sym,) = load_spec(DIR / "symmetry.yaml").configs()
    assert (sym["dataset"], sym["hidden"], sym["learning_rate"], sym["momentum"], sym["init"]) == (
        "symmetry:6", [2], 0.1, 0.9, 0.3,
    )  # fmt: skip
    (xor,) = load_spec(DIR / "xor_direct.yaml").configs()
    assert xor["hidden"] == [1] and xor["skip_connections"] and xor["learning_rate"] == 0.5
    (xor221,) = load_spec(DIR / "xor_221.yaml").configs()
    assert xor221["hidden"] == [2] and not xor221["skip_connections"]


def test_family_trees_is_the_papers_recipe() -> None:
    (ft,) = load_spec(DIR / "family_trees.yaml").configs()
    assert ft["hidden"] == [12, 12, 6]
    assert ft["input_groups"] == [24, 12] and ft["group_hidden"] == [6, 6]
    assert ft["learning_rate"] == 0.005 and ft["momentum"] == 0.9
    assert ft["schedule"] == [{"until": 20, "momentum": 0.5}]
    assert ft["learning_rate"] * ft["weight_decay"] == pytest.approx(0.002)  # 0.2% per sweep
    assert ft["epochs"] == 1500 and not ft["stop_on_solve"]
    assert round(ft["validation_split"] * 104) == 4
