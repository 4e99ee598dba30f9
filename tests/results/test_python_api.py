"""The Python API (service.api) against the CLI's JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service import api
from service.results import param_value
from tests.cli.conftest import Bplab

SPEC = {
    "name": "api",
    "dataset": "parity:3",
    "seeds": 2,
    "parameters": {
        "learning_rate": [0.5, 2.0],
        "hidden": [2, [3, 2]],
        "epochs": 50,
        "log_every": 10,
        "validation_split": 0.25,
    },
}


def same(a: object, b: object) -> bool:
    """Equal, where NaN (a frame's missing value) equals None (JSON's)."""
    missing = (a is None or (isinstance(a, float) and math.isnan(a)), b is None)
    if any(missing):
        return all(missing) or (b is None and a is pd.NaT)
    if isinstance(b, float):
        return a == pytest.approx(b)
    return a == b


@pytest.fixture
def lab(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bplab:
    monkeypatch.setenv("BPLAB_BROKER_URL", "")  # the local pool, whatever the shell says
    lab = Bplab(db_url, tmp_path)
    sweep_id = api.submit(SPEC, db=db_url, workers=2)
    assert sweep_id == 1
    lab("sweep", "tag", "1", "owner=ana")
    return lab


def test_sweeps_and_runs_frames_equal_the_cli_json(lab: Bplab) -> None:
    frame = api.sweeps(lab.url)
    (listed,) = lab.json("sweep", "list")
    assert list(frame.columns) == list(listed)
    row = frame.iloc[0].to_dict()
    for key, value in listed.items():
        if key == "created_at":
            assert abs(row[key] - pd.Timestamp(value)) < pd.Timedelta("1s")
        else:
            assert same(row[key], value), key
    assert api.sweeps(lab.url, tags={"owner": "bob"}).empty
    assert list(api.sweeps(lab.url, tags={"owner": None}, name="AP").id) == [1]

    runs = api.runs(1, db=lab.url)
    cli_runs = lab.json("runs", "1")
    assert list(runs.run_id) == [r["id"] for r in cli_runs] and len(runs) == 8
    params = list(cli_runs[0]["params"])
    assert [c for c in runs.columns if c in params] == params  # one column per parameter
    for (_, row), record in zip(runs.iterrows(), cli_runs, strict=True):
        for name in params:
            assert same(row[name], param_value(record["params"], name)), name
        for key in (
            "status",
            "seed",
            "final_loss",
            "best_loss",
            "accuracy",
            "val_loss",
            "solved_epoch",
            "epochs_run",
            "wall_time_s",
            "attempt",
            "error",
        ):
            assert same(row[key], record[key]), key
        # the CLI may print a time to the second: equal to within it
        assert abs(row["finished_at"] - pd.Timestamp(record["finished_at"])) < pd.Timedelta("1s")
    assert set(runs.hidden) == {"2", "3-2"}


def test_curves_weights_and_best_equal_the_cli(lab: Bplab, tmp_path: Path) -> None:
    curves = api.curves(1, db=lab.url)
    assert list(curves.columns) == [
        "run_id",
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "max_error",
    ]
    for run_id, group in curves.groupby("run_id"):
        cli_rows = lab.json("run", "curve", str(run_id))
        assert len(group) == len(cli_rows) == 5
        for (_, row), record in zip(group.iterrows(), cli_rows, strict=True):
            for key, value in record.items():
                assert same(row[key], value), key
    some = api.curves(run_ids=[2, 3], db=lab.url)
    assert set(some.run_id) == {2, 3}

    out = tmp_path / "w.npz"
    lab("run", "weights", "3", "-o", str(out))
    with np.load(io.BytesIO(out.read_bytes())) as saved:
        arrays = api.weights(3, db=lab.url)
        assert list(arrays) == list(saved.files) == ["W1", "b1", "W2", "b2", "W3", "b3"]
        for name, array in arrays.items():
            np.testing.assert_array_equal(array, saved[name])

    for args in ((), ("--metric", "accuracy", "--aggregate", "median")):
        (cli_answer,) = lab.json("best", "1", *args)
        kwargs = {"metric": args[1], "aggregate": args[3]} if args else {}
        answer = api.best(1, db=lab.url, **kwargs)
        assert answer["best"] == cli_answer["best"]
        assert answer["runner_up"] == cli_answer["runner_up"]
        assert answer["metric"] == cli_answer["metric"]
        assert answer["comparison"]["summary"] == cli_answer["comparison"]["summary"]
    assert api.best(1, db=lab.url)["metric"] == "val_loss"  # recorded: the default


def test_database_url_rules_and_errors(lab: Bplab, tmp_path: Path, monkeypatch) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert api.database_url() == lab.url  # BPLAB_DATABASE_URL, as the CLI
    assert api.database_url(other) == other  # db= wins, as --db
    assert api.sweeps(other).empty  # a reader never creates the file
    assert not (tmp_path / "other.db").exists()
    assert len(api.sweeps()) == 1
    with pytest.raises(LookupError, match="sweep 9 does not exist"):
        api.runs(9, db=lab.url)
    with pytest.raises(LookupError, match="run 99 does not exist"):
        api.weights(99, db=lab.url)
    with pytest.raises(ValueError, match="unknown metric"):
        api.best(1, metric="loss", db=lab.url)
    from service.spec import SpecError

    with pytest.raises(SpecError, match="lerning_rate"):
        api.submit({"dataset": "xor", "parameters": {"lerning_rate": 1}}, db=lab.url)
    assert len(api.sweeps(lab.url)) == 1  # nothing written
    queued = api.submit({**SPEC, "name": "later"}, db=lab.url, wait=False)
    assert set(api.runs(queued, db=lab.url).status) == {"queued"}
