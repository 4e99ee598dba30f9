"""Tied and recurrent nets through the service (issue 21): a CLI sweep on each new dataset,
`bplab inspect` showing the kernels, runs stopped and resumed bit-identically through the
executor (float64 and float32), never stacked into populations, float32 sweeps storing
float32 weights, and bad keys refused in one line (exit 2)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from engine import TrainState
from service.cli import cli
from service.db import repository as repo
from service.db.session import session_scope
from service.execution import execute_run, execute_runs
from service.grouping import group_runs
from service.spec import parse_spec
from tests.faults.harness import reference
from tests.reliability.helpers import make_sweep, state
from tests.reliability.test_runner import assert_clean, stop_after

EXAMPLES = Path(__file__).parents[2] / "examples" / "rumelhart1986"
TIED = {"dataset": "tc", "kernels": 2, "wrap": True, "hidden": [], "cost": "cross_entropy"}
RECURRENT = {"dataset": "sequences", "recurrent": True, "hidden": [8], "activation": "tanh"}


def _bplab(url: str, *args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(
        cli, list(args), env={"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": ""},
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == expect, result.output
    return result.output if expect else result.stdout


def _example(tmp: Path, name: str, **changes: object) -> Path:
    spec = yaml.safe_load((EXAMPLES / name).read_text())
    spec["seeds"] = 2
    spec["parameters"].update(changes)
    path = tmp / name
    path.write_text(yaml.safe_dump(spec))
    return path


def test_tc_sweep_records_runs_and_inspect_shows_the_kernels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tc.db'}"
    spec = _example(tmp_path, "tc.yaml", epochs=40, log_every=10)
    _bplab(url, "sweep", "run", str(spec), "--workers", "2")
    runs = json.loads(_bplab(url, "runs", "1", "--format", "json"))
    assert [(r["status"], r["epochs_run"]) for r in runs] == [("succeeded", 40)] * 2
    doc = json.loads(_bplab(url, "inspect", str(runs[0]["id"]), "--format", "json"))
    assert doc["layer_sizes"] == [36, 4 * 36, 1]
    assert [k["kernel"] for k in doc["kernels"]] == [1, 2, 3, 4]
    assert all(np.shape(k["weights"]) == (3, 3) for k in doc["kernels"])
    (output,) = doc["layers"]
    assert output["sources"][:2] == ["m1@r1c1", "m1@r1c2"] and output["targets"] == ["T"]
    # the kernels shown are the trained net's, as a lone run in this process trains them
    run = parse_spec(yaml.safe_load(spec.read_text())).expand()[0]
    weights, _ = reference(json.dumps(dict(run.config)), run.seed)
    np.testing.assert_array_equal(np.array(doc["kernels"][0]["weights"]).ravel(), weights[0][:, 0])
    assert run.config["kernels"] == 4
    table = _bplab(url, "inspect", str(runs[0]["id"]))
    assert "kernel 4 (bias" in table and "its receptive field as it lies on the retina" in table


def test_sequence_sweeps_learn_and_run_the_timing_variant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seq.db'}"
    spec = _example(tmp_path, "sequences.yaml", activation="tanh", epochs=400)
    _bplab(url, "sweep", "run", str(spec), "--workers", "2")
    runs = json.loads(_bplab(url, "runs", "1", "--format", "json"))
    assert all(r["status"] == "succeeded" and r["solved_epoch"] for r in runs)  # 45-60 here
    assert all(r["accuracy"] == 1.0 for r in runs)  # every step of every sequence right
    # two learning rates: runs the local pool would stack into populations if they could be
    timed = _example(
        tmp_path, "timed_sequences.yaml", epochs=30, log_every=10, learning_rate=[1e-3, 2e-3]
    )
    _bplab(url, "sweep", "run", str(timed), "--workers", "1")
    timed_runs = json.loads(_bplab(url, "runs", "2", "--format", "json"))
    assert [(r["status"], r["epochs_run"]) for r in timed_runs] == [("succeeded", 30)] * 4
    doc = json.loads(_bplab(url, "inspect", str(timed_runs[0]["id"]), "--format", "json"))
    hidden, output = doc["layers"]
    assert hidden["sources"][:6] == ["A", "B", "C", "D", "E", "h1(t-1)"]
    assert hidden["sources"][-1] == "bias" and len(hidden["sources"]) == 5 + 20 + 1
    assert output["targets"] == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("overrides", [TIED, RECURRENT], ids=["tied", "recurrent"])
def test_a_shared_weight_run_stopped_twice_resumes_bit_identical(
    db_url: str, monkeypatch: pytest.MonkeyPatch, overrides: dict, dtype: str
) -> None:
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "20")
    (run_id,) = make_sweep(db_url, 1, epochs=95, dtype=dtype, **overrides)
    assert execute_run(run_id, url=db_url, should_stop=stop_after(33)) == "queued"
    with session_scope(db_url) as session:
        epoch, data = repo.load_checkpoint(session, run_id)
    saved = TrainState.from_bytes(data)
    assert epoch == 33 and {p.dtype.name for p in saved.params} == {dtype}  # saved on stop
    assert {b.dtype.name for b in saved.buffers.values()} == {dtype}
    assert execute_run(run_id, url=db_url, should_stop=stop_after(40)) == "queued"
    assert execute_run(run_id, url=db_url) == "succeeded"
    s = state(db_url, run_id)
    assert (s["attempt"], s["epochs_run"], s["weights"]) == (3, 95, 1)
    assert_clean(db_url, run_id)  # rows and weights equal to a clean run's, of the dtype
    with session_scope(db_url) as session:
        weights = repo.load_weights(session, run_id)
    assert {w.dtype.name for w in weights} == {dtype}


def test_sweep_run_of_float32_shared_weight_nets_stores_float32_weights(tmp_path: Path) -> None:
    """`dtype: float32` with kernels and with recurrent (once refused): the runs train in
    float32, store float32 weights equal to a lone float32 run's in this process, and a
    swept dtype keeps each run's own."""
    url = f"sqlite:///{tmp_path / 'f32.db'}"
    tc = _example(tmp_path, "tc.yaml", epochs=30, log_every=10, dtype="float32")
    seq = _example(tmp_path, "sequences.yaml", activation="tanh", epochs=30, log_every=10,
                   dtype=["float32", "float64"])  # fmt: skip
    _bplab(url, "sweep", "run", str(tc), "--workers", "2")
    _bplab(url, "sweep", "run", str(seq), "--workers", "2")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        stored = conn.execute(
            "SELECT r.sweep_id, r.id, w.dtype, r.status FROM runs r "
            "JOIN run_weights w ON w.run_id = r.id ORDER BY r.id"
        ).fetchall()
    assert [(sw, dt, st) for sw, _, dt, st in stored] == [
        (1, "float32", "succeeded"), (1, "float32", "succeeded"),
        (2, "float32", "succeeded"), (2, "float32", "succeeded"),
        (2, "float64", "succeeded"), (2, "float64", "succeeded"),
    ]  # fmt: skip
    for _, run_id, dtype, _ in stored:
        with session_scope(url) as session:
            run = repo.get_run(session, run_id)
            config, seed = dict(run.config), run.seed
            weights = repo.load_weights(session, run_id)
        assert config["dtype"] == dtype and {w.dtype.name for w in weights} == {dtype}
        clean, _ = reference(json.dumps(config), seed)
        for mine, theirs in zip(weights, clean, strict=True):
            assert mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs)
    doc = json.loads(_bplab(url, "inspect", str(stored[0][1]), "--format", "json"))
    assert len(doc["kernels"]) == 4  # inspect reads float32 kernels too
    assert "kernel 4 (bias" in _bplab(url, "inspect", str(stored[0][1]))
    assert "h1(t-1)" in _bplab(url, "inspect", str(stored[2][1]), "--hidden")


def test_shared_weight_runs_are_never_stacked(db_url: str) -> None:
    tied = {k: v for k, v in TIED.items() if k != "dataset"} | {"hidden": [[]]}
    # runs that differ only in what population members may differ in (learning rate, seed)
    tied |= {"epochs": 12, "learning_rate": [0.1, 0.2], "dtype": ["float64", "float32"]}
    spec = parse_spec({"dataset": "tc", "seeds": 3, "parameters": tied})
    runs = [(i, dict(r.config), r.seed) for i, r in enumerate(spec.expand())]
    assert sorted(group_runs(runs, 64)) == [[i] for i in range(12)]
    xor = parse_spec({"dataset": "xor", "seeds": 3, "parameters": {"epochs": 12}})
    assert group_runs([(i, dict(r.config), r.seed) for i, r in enumerate(xor.expand())], 64) == [
        [0, 1, 2]
    ]
    # claimed together, each still trains alone and ends as a lone run does
    ids = make_sweep(db_url, 2, epochs=12, log_every=4, **TIED)
    ids += make_sweep(db_url, 2, epochs=12, log_every=4, **TIED | {"learning_rate": 0.2})
    ids += make_sweep(db_url, 2, epochs=12, log_every=4, dtype="float32", **TIED)
    ids += make_sweep(db_url, 2, epochs=12, log_every=4, dtype="float32", **RECURRENT)
    statuses = execute_runs(ids, url=db_url)
    assert set(statuses.values()) == {"succeeded"}
    for run_id in ids:
        assert_clean(db_url, run_id)


BAD = [
    ("dataset: xor\nparameters:\n  kernels: 2\n", "parameters.kernels: needs an image dataset"),
    ("dataset: tc\nparameters:\n  kernels: 0\n", "parameters.kernels: must be an integer in"),
    ("dataset: tc\nparameters:\n  kernels: 2\n  field: 7\n", "parameters.field: 7x7 fields"),
    ("dataset: xor\nparameters:\n  wrap: true\n", "parameters.wrap: only used with kernels"),
    ("dataset: xor\nparameters:\n  recurrent: true\n", "parameters.recurrent: needs a sequence"),
    (
        "dataset: sequences\nparameters:\n  recurrent: true\n  hidden: [[4, 4]]\n",
        "parameters.hidden: a recurrent net has exactly one hidden layer",
    ),
    (
        "dataset: tc\nparameters:\n  recurrent: true\n  kernels: 1\n",
        "parameters.recurrent: cannot go with kernels",
    ),
    ("dataset: sequences\nparameters:\n  recurrent: 1\n", "parameters.recurrent: must be true"),
    (
        "dataset: tc\nparameters:\n  kernels: 1\n  skip_connections: true\n",
        "parameters.kernels: cannot go with skip_connections",
    ),
    ("dataset: timed_sequences:30\n", "dataset: timed_sequences:N needs an integer N in [0, 20]"),
    ("dataset: tc:3\n", "dataset: 'tc' takes no argument"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[1] for _, m in BAD])
def test_bad_shared_weight_keys_are_one_line_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    output = _bplab(url, "sweep", "run", str(path), expect=2)
    assert output.strip() == output.strip().splitlines()[0]  # one line
    assert f"{path}: {message}" in output
    assert not (tmp_path / "bad.db").exists()  # nothing written
