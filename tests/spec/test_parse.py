"""Loading and validating specs: defaults, types, files, names, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.spec import DEFAULTS, PARAMETERS, SpecError, defaults_table, load_spec, parse_spec

# The run configuration's keys, as common.md fixes them for the runner.
CONFIG_KEYS = {
    "dataset", "hidden", "learning_rate", "momentum", "cost", "activation", "output_activation",
    "optimizer", "batch_size", "epochs", "init", "weight_decay", "skip_connections", "stop_loss",
    "stop_within", "stop_on_solve", "validation_split", "log_every", "schedule",
    "input_groups", "group_hidden", "epoch_metrics", "patience", "min_delta", "restore_best",
    "decay", "decay_biases", "error_margin",
    "kernels", "field", "wrap", "recurrent",  # issue 21: tied and recurrent nets
    "dtype",  # issue 22: float32 or float64
}  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_fill_every_key(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "dataset: xor\n"))
    (run,) = spec.expand()
    assert set(run.config) == CONFIG_KEYS
    assert run.config == {"dataset": "xor", **DEFAULTS}
    assert run.seed == 0
    assert json.loads(json.dumps(run.config)) == run.config
    assert spec.method == "grid" and spec.samples is None
    assert spec.seeds == [0]
    assert spec.swept == []


def test_documented_defaults() -> None:
    assert DEFAULTS == {
        "learning_rate": 0.5, "momentum": 0.9, "hidden": [2], "cost": "sse",
        "activation": "sigmoid", "output_activation": "sigmoid", "optimizer": "sgd",
        "batch_size": "full", "epochs": 1000, "init": 0.3, "weight_decay": 0.0,
        "decay": 0.0, "decay_biases": True, "error_margin": 0.0,
        "skip_connections": False, "input_groups": None, "group_hidden": None,
        "stop_loss": None, "stop_within": 0.5,
        "stop_on_solve": False, "patience": 0, "min_delta": 0.0, "restore_best": False,
        "validation_split": 0.0, "log_every": 1, "epoch_metrics": "exact", "schedule": [],
        "kernels": None, "field": 3, "wrap": False, "recurrent": False,  # issue 21
        "dtype": "float64",  # issue 22
    }  # fmt: skip
    rows = defaults_table()
    assert [row[0] for row in rows] == list(PARAMETERS)
    assert all(default and description for _, default, description in rows)
    assert dict((name, default) for name, default, _ in rows)["hidden"] == "2"


def test_values_are_normalised(tmp_path: Path) -> None:
    text = """dataset: xor
parameters:
  learning_rate: 1
  epochs: 1e3
  weight_decay: 1e-4
  init: 1
  batch_size: 1
  hidden: [[3, 2]]
  schedule: [{until: 20, momentum: 0}, {until: 40, learning_rate: 1}]
"""
    (run,) = load_spec(write(tmp_path, text)).expand()
    config = run.config
    assert config["learning_rate"] == 1.0 and isinstance(config["learning_rate"], float)
    assert config["epochs"] == 1000 and isinstance(config["epochs"], int)
    assert config["weight_decay"] == pytest.approx(1e-4)
    assert config["init"] == 1.0 and isinstance(config["init"], float)
    assert config["batch_size"] == 1
    assert config["hidden"] == [3, 2]
    assert config["schedule"] == [
        {"until": 20, "momentum": 0.0},
        {"until": 40, "learning_rate": 1.0},
    ]


def test_no_hidden_layer(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "dataset: xor\nparameters:\n  hidden: [[]]\n"))
    assert [run.config["hidden"] for run in spec.expand()] == [[]]


def test_named_init_and_nullable_stops(tmp_path: Path) -> None:
    text = "dataset: xor\nparameters:\n  init: he\n  stop_within: null\n  stop_loss: 0.01\n"
    (run,) = load_spec(write(tmp_path, text)).expand()
    assert run.config["init"] == "he"
    assert run.config["stop_within"] is None
    assert run.config["stop_loss"] == 0.01


def test_seeds_count_and_list(tmp_path: Path) -> None:
    assert load_spec(write(tmp_path, "dataset: xor\nseeds: 3\n")).seeds == [0, 1, 2]
    assert load_spec(write(tmp_path, "dataset: xor\nseeds: [3, 17, 42]\n")).seeds == [3, 17, 42]
    assert load_spec(write(tmp_path, "dataset: xor\nseeds: [0]\n")).seeds == [0]


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    assert load_spec(write(tmp_path, "dataset: xor\n", "my-study.yaml")).name == "my-study"
    assert load_spec(write(tmp_path, "name: given\ndataset: xor\n", "other.yml")).name == "given"
    assert load_spec(write(tmp_path, "name:\ndataset: xor\n", "blank.yaml")).name == "blank"
    assert parse_spec({"dataset": "xor"}).name == "sweep"


def test_null_top_level_keys_take_their_defaults() -> None:
    spec = parse_spec({"dataset": "xor", "name": None, "method": None, "seeds": None})
    assert (spec.name, spec.method, spec.seeds) == ("sweep", "grid", [0])


def test_json_spec_equals_yaml_spec(tmp_path: Path) -> None:
    data = {
        "dataset": "parity:3",
        "seeds": [1, 2],
        "parameters": {"hidden": [3, [4, 4]], "momentum": 0.5},
    }
    from_json = load_spec(write(tmp_path, json.dumps(data), "study.json"))
    yaml_text = (
        "dataset: parity:3\nseeds: [1, 2]\nparameters:\n  hidden: [3, [4, 4]]\n  momentum: 0.5\n"
    )
    from_yaml = load_spec(write(tmp_path, yaml_text, "study.yaml"))
    assert from_json.name == from_yaml.name == "study"
    assert from_json.expand() == from_yaml.expand()
    assert from_json.spec_dict == from_yaml.spec_dict


def test_parse_spec_errors_use_the_source(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"dataset": "xor", "parameters": {"epochs": 0}}, source="api")
    expected = "api: parameters.epochs: must be an integer in [1, 1,000,000], got 0"
    assert str(caught.value) == expected


def test_sized_datasets_are_canonical() -> None:
    assert parse_spec({"dataset": "symmetry:06"}).dataset == "symmetry:6"
    assert parse_spec({"dataset": "encoder:8"}).dataset == "encoder:8"
    assert parse_spec({"dataset": "family_trees"}).dataset == "family_trees"


def test_data_file_is_relative_to_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    csv = tmp_path / "data" / "points.csv"
    csv.write_text("0,0,0\n1,1,1\n")
    spec_path = write(tmp_path, "dataset: csv:data/points.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec(spec_path)
    assert spec.dataset == f"csv:{csv.resolve()}"
    assert spec.expand()[0].config["dataset"] == f"csv:{csv.resolve()}"
    # An absolute path is taken as it is.
    assert load_spec(write(tmp_path, f"dataset: csv:{csv}\n", "abs.yaml")).dataset == spec.dataset


def test_values_mapping_is_a_list(tmp_path: Path) -> None:
    as_list = load_spec(
        write(tmp_path, "dataset: xor\nparameters:\n  cost: [sse, mse]\n", "a.yaml")
    )
    as_map = load_spec(
        write(tmp_path, "dataset: xor\nparameters:\n  cost: {values: [sse, mse]}\n", "b.yaml")
    )
    assert as_list.expand() == as_map.expand()
    assert as_map.swept == ["cost"]


@pytest.mark.parametrize(
    "text",
    [
        "dataset: xor\nseeds: 2\nparameters:\n  learning_rate: [0.1, 0.5]\n  hidden: [[4, 4]]\n",
        "dataset: xor\nparameters:\n  hidden: [2, [3, 3], []]\n"
        "  schedule: [{until: 5, momentum: 0.5}]\n",
        "dataset: xor\nparameters:\n  hidden: [[]]\n  init: [0.1, xavier]\n",
        "dataset: xor\nmethod: random\nsamples: 6\nsampler_seed: 4\nseeds: [5, 9]\nparameters:\n"
        "  learning_rate: {distribution: log_uniform, min: 0.01, max: 1}\n  hidden: [2, [2, 2]]\n",
    ],
)
def test_spec_dict_parses_back_to_the_same_runs(tmp_path: Path, text: str) -> None:
    spec = load_spec(write(tmp_path, text))
    stored = json.loads(json.dumps(spec.spec_dict))  # as it comes back from the database
    again = parse_spec(stored)
    assert again.expand() == spec.expand()
    assert again.spec_dict == spec.spec_dict
    assert again.swept == spec.swept
    assert set(stored["parameters"]) == set(PARAMETERS)


def test_spec_is_frozen_and_runs_are_independent(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "dataset: xor\nseeds: 2\n"))
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    first, second = spec.expand()
    first.config["hidden"].append(9)
    assert second.config["hidden"] == [2]
    assert spec.expand()[0].config["hidden"] == [2]
