"""Every malformed spec is refused with one line naming the file and the field."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from service.spec import SpecError, load_spec
from tests.spec.malformed import CASES, write_case


def test_cases_are_many_and_distinct() -> None:
    ids = [case_id for case_id, _, _ in CASES]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)
    specs = [repr(spec) for _, spec, _ in CASES]
    assert len(set(specs)) == len(specs)


@pytest.mark.parametrize(("case_id", "spec", "field"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_refused(tmp_path: Path, case_id: str, spec: object, field: str) -> None:
    path = write_case(tmp_path, spec)  # type: ignore[arg-type]
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    err = caught.value
    assert field in err.field, str(err)
    assert err.file == str(path)
    assert str(err) == f"{path}: {err.field}: {err.message}"
    assert "\n" not in str(err)
    assert err.message


def test_message_matches_the_documented_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("xor.yaml").write_text("dataset: xor\nparameters:\n  learning_rate: -0.1\n")
    with pytest.raises(SpecError) as caught:
        load_spec("xor.yaml")
    assert str(caught.value) == "xor.yaml: parameters.learning_rate: must be > 0, got -0.1"


def test_unknown_parameter_suggests_and_lists(tmp_path: Path) -> None:
    path = write_case(tmp_path, "dataset: xor\nparameters:\n  lerning_rate: 0.1\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == "parameters.lerning_rate"
    assert "did you mean 'learning_rate'?" in caught.value.message
    assert "(allowed: learning_rate, momentum, hidden," in caught.value.message


def test_alias_suggests_the_real_name(tmp_path: Path) -> None:
    path = write_case(tmp_path, "dataset: xor\nparameters:\n  lr: 0.1\n")
    with pytest.raises(SpecError, match="did you mean 'learning_rate'"):
        load_spec(path)


def test_unknown_choice_lists_the_engine_names(tmp_path: Path) -> None:
    path = write_case(tmp_path, "dataset: xor\nparameters:\n  activation: sigmod\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = caught.value.message
    assert "did you mean 'sigmoid'?" in message
    for name in ("identity", "relu", "sigmoid", "tanh"):
        assert name in message


def test_yaml_error_names_the_line(tmp_path: Path) -> None:
    text = "name: x\ndataset: xor\nparameters:\n  hidden: [2, 4\n  epochs: 10\n"
    path = write_case(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field.startswith("line ")
    assert int(caught.value.field.split()[1]) >= 4


def test_json_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "dataset": "xor",\n  "seeds": 3,,\n}\n')
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == "line 3"
    assert "invalid JSON" in caught.value.message


def test_json_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"dataset": "xor", "seeds": 3, "seeds": 4}')
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == "seeds"
    assert "duplicate" in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert caught.value.field == "file"


def test_limit_is_configurable(tmp_path: Path) -> None:
    path = write_case(tmp_path, "dataset: xor\nseeds: 10\nparameters:\n  hidden: [1, 2, 3]\n")
    assert load_spec(path, max_runs=30).count_runs() == 30
    with pytest.raises(SpecError) as caught:
        load_spec(path, max_runs=29)
    assert caught.value.field == "runs"
    assert "30 runs" in caught.value.message
    assert "29" in caught.value.message
    assert "--max-runs" in caught.value.message


def test_spec_error_pickles() -> None:
    err = SpecError("a.yaml", "seeds", "must be >= 1")
    again = pickle.loads(pickle.dumps(err))
    assert (again.file, again.field, again.message) == ("a.yaml", "seeds", "must be >= 1")
    assert str(again) == str(err)
