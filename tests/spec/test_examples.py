"""Every spec shipped in examples/ validates under the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.spec import load_spec

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
