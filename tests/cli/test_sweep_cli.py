"""The sweep workflow through the real CLI on the embedded SQLite default."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import TrainConfig, train
from service.datasets import training_data
from service.networks import network_from_config
from tests.cli.conftest import Bplab, small_xor_spec

REPO = Path(__file__).resolve().parents[2]


def _count(url: str, table: str) -> int:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_plan_prints_expansion_and_writes_nothing(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", small_xor_spec())
    out = bplab("sweep", "plan", str(spec)).stdout
    assert "2 configs x 2 seeds = 4 runs" in out
    assert "1,200 epochs" in out
    rows = bplab.json("sweep", "plan", str(spec))
    assert [r["learning_rate"] for r in rows] == [0.5, 2.0]
    assert not Path(bplab.url.removeprefix("sqlite:///")).exists()  # plan never opens the database


def test_run_records_every_run_and_prints_results(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", small_xor_spec())
    result = bplab("sweep", "run", str(spec), "--workers", "2")
    assert "epochs to solve" in result.stdout
    assert "4/0/0" not in result.stdout and "2/0/0" in result.stdout  # 2 seeds per config
    runs = bplab.json("runs", "1")
    assert len(runs) == 4
    for run in runs:
        for key in (
            "id",
            "sweep_id",
            "status",
            "seed",
            "params",
            "epochs_run",
            "final_loss",
            "best_loss",
            "accuracy",
            "solved_epoch",
            "error",
        ):
            assert key in run, key
        assert run["status"] == "succeeded"
        assert run["params"]["hidden"] == [2]
        assert run["epochs_run"] == 300
        assert run["error"] is None
    assert sorted((r["params"]["learning_rate"], r["seed"]) for r in runs) == [
        (0.5, 0),
        (0.5, 1),
        (2.0, 0),
        (2.0, 1),
    ]
    # log_every 7 over 300 epochs: epochs 7, 14, ..., 294 and the last epoch, 300.
    curve = bplab.json("run", "curve", str(runs[0]["id"]))
    assert [row["epoch"] for row in curve] == [*range(7, 300, 7), 300]
    assert curve[-1]["loss"] == pytest.approx(runs[0]["final_loss"])
    assert _count(bplab.url, "epoch_metrics") == 4 * 43
    assert _count(bplab.url, "run_weights") == 4


def test_list_show_and_run_show(bplab: Bplab) -> None:
    spec = bplab.write_spec("mine.yaml", small_xor_spec(name=None))
    bplab("sweep", "run", str(spec), "--workers", "1")
    sweeps = bplab.json("sweep", "list")
    assert len(sweeps) == 1
    assert sweeps[0]["name"] == "mine"
    shown = bplab.json("sweep", "show", "1")[0]
    assert shown["runs_succeeded"] == 4
    assert shown["spec"]["dataset"] == "xor"
    assert "learning_rate" in bplab("sweep", "show", "1").stdout
    run = bplab.json("run", "show", "1")[0]
    assert run["status"] == "succeeded"
    assert bplab("run", "show", "999", expect=2).output.count("\n") == 1


def test_exported_weights_are_the_trained_network(bplab: Bplab, tmp_path: Path) -> None:
    spec = bplab.write_spec("s.yaml", small_xor_spec(seeds=[5]))
    bplab("sweep", "run", str(spec), "--workers", "1")
    run = bplab.json("run", "show", "2")[0]
    out = tmp_path / "w.npz"
    bplab("run", "weights", "2", "-o", str(out))
    with np.load(out, allow_pickle=False) as saved:
        arrays = [saved[k] for k in ("W1", "b1", "W2", "b2")]
    # Train the same config and seed in this process: the exported arrays must be that network.
    config = run["params"]
    X, Y, _ = training_data(config, run["seed"])
    rng = np.random.default_rng(run["seed"])
    net = network_from_config(config, X.shape[1], Y.shape[1], rng)
    train(net, X, Y, TrainConfig.from_dict(config), rng=rng)
    for mine, theirs in zip(net.params, arrays, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    expected_outputs = net.forward(X)
    for i, array in enumerate(arrays):
        net.params[i][...] = array
    np.testing.assert_array_equal(net.forward(X), expected_outputs)


def test_epoch_metrics_running_is_recorded_as_the_engine_reports_it(bplab: Bplab) -> None:
    spec = small_xor_spec(seeds=[3, 4])
    spec["parameters"].update(
        learning_rate=0.5, batch_size=2, epochs=60, log_every=1, epoch_metrics=["exact", "running"]
    )
    path = bplab.write_spec("s.yaml", spec)
    bplab("sweep", "run", str(path), "--workers", "2")
    runs = bplab.json("runs", "1")
    assert sorted((r["params"]["epoch_metrics"], r["seed"]) for r in runs) == [
        ("exact", 3),
        ("exact", 4),
        ("running", 3),
        ("running", 4),
    ]
    finals = {}
    for run in runs:
        config = run["params"]
        X, Y, _ = training_data(config, run["seed"])
        rng = np.random.default_rng(run["seed"])
        net = network_from_config(config, X.shape[1], Y.shape[1], rng)
        history = train(net, X, Y, TrainConfig.from_dict(config), rng=rng)
        curve = bplab.json("run", "curve", str(run["id"]))
        assert [row["loss"] for row in curve] == history.loss.tolist()
        assert [row["accuracy"] for row in curve] == history.accuracy.tolist()
        finals[config["epoch_metrics"], run["seed"]] = run["final_loss"]
    # same updates, different reports: the exact loss is taken after each epoch's updates
    assert finals["exact", 3] != finals["running", 3]


def test_runs_filters_sorts_and_limits(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", small_xor_spec())
    bplab("sweep", "run", str(spec), "--workers", "2")
    by_loss = bplab.json("runs", "1", "--sort", "final_loss")
    losses = [r["final_loss"] for r in by_loss]
    assert losses == sorted(losses)
    assert len(bplab.json("runs", "1", "--limit", "3")) == 3
    assert bplab.json("runs", "1", "--status", "failed") == []
    csv_out = bplab("runs", "1", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("id,learning_rate,status")
    assert len(csv_out) == 5
    err = bplab("runs", "1", "--sort", "nonsense", expect=2).output
    assert "--sort" in err and "final_loss" in err


def test_datasets_lists_the_1986_tasks(bplab: Bplab) -> None:
    rows = {r["name"]: r for r in bplab.json("datasets")}
    assert rows["xor"]["patterns"] == 4
    assert rows["symmetry:N"]["patterns"] == 16  # symmetry:4 as the example
    assert "family_trees" in rows


def _sigint_as_in_a_terminal() -> None:
    # A program in a terminal's foreground gets Ctrl-C. A test runner started in the background
    # (nohup, `&` in a script) has SIGINT ignored, and every child inherits that: the sweep
    # would never see the signal and finish all its runs.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_finished_runs_and_resume_finishes_the_rest(bplab: Bplab) -> None:
    spec = bplab.write_spec(
        "slow.yaml",
        {
            "dataset": "symmetry:6",
            "seeds": 6,
            "parameters": {"learning_rate": 0.1, "hidden": 2, "epochs": 40000, "log_every": 500},
        },
    )
    # Populations of 2: the runs finish in three steps, so Ctrl-C lands between finished and not.
    bplab.env["BPLAB_POPULATION_SIZE"] = "2"
    proc = bplab.subprocess(
        "sweep",
        "run",
        str(spec),
        "--workers",
        "1",
        start_new_session=True,
        preexec_fn=_sigint_as_in_a_terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, done = time.monotonic() + 120, 0
        while time.monotonic() < deadline:  # wait until at least one run has finished
            if os.path.exists(bplab.url.removeprefix("sqlite:///")):
                try:
                    with sqlite3.connect(bplab.url.removeprefix("sqlite:///")) as conn:
                        done = conn.execute(
                            "SELECT COUNT(*) FROM runs WHERE status='succeeded'"
                        ).fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
                if done >= 1:
                    break
            time.sleep(0.2)
        assert done >= 1, "no run finished within 120 s"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr  # the shell's code for Ctrl-C (issue 18)
    assert "bplab sweep resume 1" in stderr
    assert "6/6" not in stderr, stderr  # the bar counts finished runs, not handed-back ones
    statuses = [r["status"] for r in bplab.json("runs", "1")]
    assert "running" not in statuses
    assert 1 <= statuses.count("succeeded") < 6
    assert statuses.count("queued") == 6 - statuses.count("succeeded")

    bplab("sweep", "resume", "1", "--workers", "2")
    runs = bplab.json("runs", "1")
    assert [r["status"] for r in runs] == ["succeeded"] * 6
    # Resumed runs have exactly one row per recorded epoch: 500, 1000, ..., 40000.
    with sqlite3.connect(bplab.url.removeprefix("sqlite:///")) as conn:
        per_run = conn.execute(
            "SELECT run_id, COUNT(*), MIN(epoch), MAX(epoch) FROM epoch_metrics GROUP BY run_id"
        ).fetchall()
    assert len(per_run) == 6
    assert all(row[1:] == (80, 500, 40000) for row in per_run), per_run


def test_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "bplab"
    out = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    for command in ("sweep", "runs", "run", "datasets", "db"):
        assert command in out.stdout
