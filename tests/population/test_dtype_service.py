"""dtype float32 in the service (issue 22): stored weights and checkpoints keep their dtype, a
resumed float32 run ends bit-identical to an uninterrupted one, float32 population members
are recorded as their lone runs, runs of two dtypes never share a population, and the CLI
trains and stores float32 from a spec (a bad dtype: exit 2, one line, nothing written)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import TrainState
from service.cli import cli
from service.db import repository as repo
from service.db.models import RunWeights
from service.db.session import session_scope
from service.execution import execute_run, execute_runs
from service.grouping import shape_key
from tests.cli.conftest import Bplab, small_xor_spec
from tests.population.test_population_service import _configs, _result, _same_results, _sweep
from tests.reliability.test_runner import assert_clean, stop_after


def test_a_float32_run_stopped_twice_resumes_bit_identical(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    runs = _configs(dtype="float32", hidden=3, epochs=403, log_every=7, learning_rate=0.7)
    (run_id, _) = _sweep(db_url, runs)
    assert execute_run(run_id, url=db_url, should_stop=stop_after(123)) == "queued"
    with session_scope(db_url) as session:
        epoch, data = repo.load_checkpoint(session, run_id)
        state = TrainState.from_bytes(data)
    assert epoch == 123 and {p.dtype.name for p in state.params} == {"float32"}
    assert {b.dtype.name for b in state.buffers.values()} == {"float32"}
    assert execute_run(run_id, url=db_url, should_stop=stop_after(150)) == "queued"
    assert execute_run(run_id, url=db_url) == "succeeded"
    assert_clean(db_url, run_id)  # rows and weights equal to a clean float32 run's
    with session_scope(db_url) as session:
        weights = repo.load_weights(session, run_id)
        assert session.get(RunWeights, run_id).dtype == "float32"
    assert {w.dtype.name for w in weights} == {"float32"}


def test_float32_population_members_are_recorded_as_their_lone_runs(db_url, monkeypatch):
    monkeypatch.setenv("BPLAB_CHECKPOINT_EVERY", "50")
    runs = _configs(dataset="symmetry:4", hidden=3, learning_rate=[0.3, 1.5], epochs=200,
                    log_every=5, dtype="float32", weight_decay=[0.0, 0.001])  # fmt: skip
    alone, together = _sweep(db_url, runs), _sweep(db_url, runs)
    for rid in alone:
        execute_run(rid, url=db_url)
    execute_runs(together, url=db_url, worker="pop")
    for a, b in zip(alone, together, strict=True):
        ra, rb = _result(db_url, a), _result(db_url, b)
        _same_results(ra, rb)
        assert {w.dtype.name for w in rb["weights"]} == {"float32"}


def test_runs_of_two_dtypes_never_share_a_population():
    runs = _configs(dtype=["float32", "float64"], learning_rate=[0.5, 1.0])
    keys = {c["dtype"]: set() for c, _ in runs}
    for config, seed in runs:
        keys[config["dtype"]].add(shape_key(config, seed))
    assert all(len(k) == 1 for k in keys.values())  # one population per dtype ...
    assert keys["float32"].isdisjoint(keys["float64"])  # ... never both


def test_config_key_ignores_the_default_dtype():
    config = _configs()[0][0]
    old = {k: v for k, v in config.items() if k != "dtype"}  # a run from before issue 22
    assert repo.config_key(config) == repo.config_key(old)
    assert repo.config_key({**config, "dtype": "float32"}) != repo.config_key(old)


@pytest.fixture
def bplab(tmp_path: Path) -> Bplab:
    """tests/cli's fixture: the CLI in-process on a fresh SQLite file."""
    return Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)


def test_sweep_run_with_float32_stores_float32_weights(bplab: Bplab) -> None:
    spec = small_xor_spec()
    spec["parameters"]["dtype"] = "float32"
    path = bplab.write_spec("s.yaml", spec)
    bplab("sweep", "run", str(path), "--workers", "2")
    with sqlite3.connect(bplab.url.removeprefix("sqlite:///")) as conn:
        dtypes = conn.execute("SELECT dtype FROM run_weights").fetchall()
        statuses = conn.execute("SELECT DISTINCT status FROM runs").fetchall()
    assert len(dtypes) == 4 and set(dtypes) == {("float32",)}
    assert statuses == [("succeeded",)]
    with session_scope(bplab.url) as session:
        weights = repo.load_weights(session, 1)
    assert {w.dtype.name for w in weights} == {"float32"}


def test_a_bad_dtype_is_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bplab.db'}"
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: xor\nparameters:\n  dtype: float16\n")
    result = CliRunner().invoke(
        cli, ["sweep", "run", str(path), "--workers", "1"],
        env={"BPLAB_DATABASE_URL": url, "BPLAB_BROKER_URL": ""},
    )  # fmt: skip
    message = result.output.strip()
    assert result.exit_code == 2 and "\n" not in message, result.output
    assert "parameters.dtype" in message and "float32" in message, message
    if Path(url.removeprefix("sqlite:///")).exists():
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
