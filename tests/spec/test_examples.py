"""Every spec shipped in examples/ validates under the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import TrainConfig
from service.spec import load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})


def test_the_three_first_examples_exist() -> None:
    names = {p.name for p in FILES}
    assert {"xor.yaml", "symmetry.yaml", "digits.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.count_runs() >= 1
    assert len(spec.expand()) == spec.count_runs()


def test_xor_example_is_small() -> None:
    spec = load_spec(EXAMPLES / "xor.yaml")
    assert spec.count_runs() == 30
    assert spec.swept == ["learning_rate", "hidden"]
    assert all(r.config["stop_on_solve"] for r in spec.expand())


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example_configs_are_accepted_by_the_engine(path: Path) -> None:
    for config in load_spec(path).configs():
        train_config = TrainConfig.from_dict(config)
        assert train_config.epochs == config["epochs"]
        assert train_config.learning_rate == config["learning_rate"]


def test_schedule_reaches_the_engine() -> None:
    schedule = [{"until": 20, "momentum": 0.5}, {"until": 40, "learning_rate": 0.01}]
    spec = parse_spec({"dataset": "family_trees", "parameters": {"schedule": schedule}})
    (config,) = spec.configs()
    train_config = TrainConfig.from_dict(config)
    assert train_config.values_at(20) == (0.5, 0.5)
    assert train_config.values_at(40) == (0.01, 0.9)
    assert train_config.values_at(41) == (0.5, 0.9)
