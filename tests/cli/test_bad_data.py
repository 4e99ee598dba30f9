"""Issue 18, items 1, 4 and 5: bad data files, numbers without a bound and combinations that
make no sense are refused by `sweep plan`, `run` and `submit`: one line, exit 2, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from engine import load_dataset
from service.cli import cli
from service.spec.shapes import data_shape

CSV_CASES = {
    "text-cell": ("a,b,y\n1,2,0\n1,x,1\n", "line 3, column 2: not a number: 'x'"),
    "nan-cell": ("a,b,y\n1,2,0\n1,nan,1\n", "line 3, column 2: not a finite number"),
    "inf-cell": ("1,2,0\n1,inf,1\n", "line 2, column 2: not a finite number"),
    "ragged-row": ("1,2,0\n1,2\n", "line 2 has 2 columns, expected 3"),
    "empty-file": ("", "empty file"),
    "header-only": ("a,b,y\n", "no data rows"),
    "one-column": ("1\n2\n", "needs at least one input and one target column"),
}
NPZ_CASES = {
    "wrong-keys": ({"A": np.ones((3, 2)), "B": np.ones(3)}, "needs arrays 'X' and 'Y'"),
    "lengths-differ": ({"X": np.ones((3, 2)), "Y": np.ones(4)}, "X has 3 rows but Y has 4"),
    "no-rows": ({"X": np.ones((0, 2)), "Y": np.ones(0)}, "no patterns"),
    "no-inputs": ({"X": np.ones((3, 0)), "Y": np.ones(3)}, "at least one input"),
    "nan-target": ({"X": np.ones((2, 2)), "Y": np.array([0.0, np.nan])}, "must be finite"),
    "text-array": ({"X": np.array([["a", "b"]]), "Y": np.ones(1)}, "must be numeric"),
    "3-d": ({"X": np.ones((2, 2, 2)), "Y": np.ones(2)}, "must be 2-D"),
}


def _write(tmp_path: Path, case: str) -> tuple[Path, str]:
    if case in CSV_CASES:
        text, expected = CSV_CASES[case]
        data = tmp_path / f"{case}.csv"
        data.write_text(text)
        spec = f"dataset: csv:{data.name}\n"
    else:
        arrays, expected = NPZ_CASES[case]
        data = tmp_path / f"{case}.npz"
        np.savez(data, **arrays)
        spec = f"dataset: npz:{data.name}\n"
    path = tmp_path / "spec.yaml"
    path.write_text(spec + "parameters: {hidden: 2, epochs: 5}\n")
    return path, expected


def _invoke(tmp_path: Path, *args: str, broker: str = "") -> tuple[int, list[str]]:
    env = {"BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'bplab.db'}", "BPLAB_BROKER_URL": broker}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output.strip().splitlines()


COMMANDS = {
    "plan": (["sweep", "plan"], ""),
    "run": (["sweep", "run", "--workers", "1"], ""),
    # load_spec runs before the broker is contacted, so no Redis is needed to see the refusal
    "submit": (["sweep", "submit"], "redis://127.0.0.1:1/0"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", [*CSV_CASES, *NPZ_CASES])
def test_bad_data_file_is_one_line_and_nothing_written(
    tmp_path: Path, case: str, command: str
) -> None:
    spec, expected = _write(tmp_path, case)
    args, broker = COMMANDS[command]
    code, lines = _invoke(tmp_path, *args, str(spec), broker=broker)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert f"{spec}: dataset: " in lines[0] and case in lines[0] and expected in lines[0], lines
    assert not (tmp_path / "bplab.db").exists()


SPEC_CASES = {
    "epochs-1e12": ("dataset: xor\nparameters: {epochs: 1e12}\n", "parameters.epochs"),
    "hidden-1e8": ("dataset: xor\nparameters: {hidden: 1e8}\n", "parameters.hidden"),
    "seed-1e23": ("dataset: xor\nseeds: [1e23]\n", "seeds[0]"),
    "seed-count-1e12": ("dataset: xor\nseeds: 1e12\n", "seeds"),
    "batch-1e12": ("dataset: xor\nparameters: {batch_size: 1e12}\n", "parameters.batch_size"),
    "sampler-seed-1e30": (
        "dataset: xor\nmethod: random\nsamples: 2\nsampler_seed: 1e30\n",
        "sampler_seed",
    ),
    "softmax-one-output": (
        "dataset: xor\nparameters: {output_activation: [sigmoid, softmax]}\n",
        "parameters.output_activation: softmax on xor, which has 1 output unit",
    ),
    "softmax-not-one-hot": (
        "dataset: negation\nparameters: {output_activation: softmax}\n",
        "parameters.output_activation: softmax outputs sum to 1",
    ),
    "identity-cross-entropy": (
        "dataset: xor\nparameters: {output_activation: identity, cost: cross_entropy}\n",
        "parameters.output_activation: identity outputs with cost cross_entropy",
    ),
}


@pytest.mark.parametrize("case", SPEC_CASES)
def test_unbounded_or_nonsense_spec_is_refused(tmp_path: Path, case: str) -> None:
    text, expected = SPEC_CASES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    for args in (["sweep", "plan"], ["sweep", "run", "--workers", "1"]):
        code, lines = _invoke(tmp_path, *args, str(spec))
        assert code == 2 and len(lines) == 1, lines
        assert f"{spec}: {expected}" in lines[0], lines
    assert not (tmp_path / "bplab.db").exists()


def test_targets_out_of_reach_of_sigmoid_are_refused_identity_accepted(tmp_path: Path) -> None:
    (tmp_path / "reg.csv").write_text("a,y\n1,5\n2,3\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: csv:reg.csv\n")
    code, lines = _invoke(tmp_path, "sweep", "plan", str(spec))
    assert code == 2 and len(lines) == 1 and "lie in [3, 5], out of reach" in lines[0], lines
    spec.write_text("dataset: csv:reg.csv\nparameters: {output_activation: identity}\n")
    code, lines = _invoke(tmp_path, "sweep", "plan", str(spec))
    assert code == 0, lines


def test_validation_split_needs_two_patterns(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("1,0\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: csv:one.csv\nparameters: {validation_split: 0.5}\n")
    code, lines = _invoke(tmp_path, "sweep", "plan", str(spec))
    assert code == 2 and "parameters.validation_split" in lines[0], lines


@pytest.mark.parametrize(
    "name", ["xor", "negation", "family_trees", "parity:3", "symmetry:4", "encoder:8", "addition:2"]
)
def test_shape_table_matches_the_engine(name: str) -> None:
    shape, data = data_shape(name), load_dataset(name)
    assert shape is not None
    assert (shape.patterns, shape.inputs, shape.outputs) == (*data.X.shape, data.Y.shape[1])
    assert shape.target_min <= data.Y.min() and data.Y.max() <= shape.target_max
    one_hot = bool(np.allclose(data.Y.sum(axis=1), 1.0))
    assert shape.rows_are_distributions == one_hot


def test_plan_estimates_memory_and_time(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: xor\nseeds: 2\nparameters: {hidden: [2, 4], epochs: 1000}\n")
    code, lines = _invoke(tmp_path, "sweep", "plan", str(spec))
    assert code == 0, lines
    assert lines[1].startswith("estimate (rough, no early stop): up to "), lines
    assert " per run; " in lines[1] and " of CPU, about " in lines[1], lines


def test_a_run_larger_than_the_memory_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    # two layers of 100,000 units: 10^10 weights, 80 GB a copy
    spec.write_text("dataset: digits\nparameters: {hidden: [[100000, 100000]]}\n")
    for args in (["sweep", "plan"], ["sweep", "run", "--workers", "1"]):
        code, lines = _invoke(tmp_path, *args, str(spec))
        assert code == 2 and len(lines) == 1, lines
        assert "more than this machine's" in lines[0] and "of memory" in lines[0], lines
    assert not (tmp_path / "bplab.db").exists()


def test_max_runs_has_a_ceiling(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: xor\n")
    for args in (["sweep", "plan"], ["sweep", "run"], ["sweep", "submit"]):
        code, lines = _invoke(tmp_path, *args, str(spec), "--max-runs", "2000000")
        assert code == 2 and "1<=x<=100000" in lines[-1], lines
