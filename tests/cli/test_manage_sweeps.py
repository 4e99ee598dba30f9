"""Issue 19 through the CLI on SQLite and PostgreSQL: sweep delete, rename, tag, note, list
filters, bplab best, --db over the environment over bplab.toml, a spec's targets naming CSV
output columns; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from service.cli import cli
from service.db.session import session_scope
from tests.cli.conftest import Bplab, count, one_line_exit_2, tiny_spec

# --- delete, rename, tag, note, list --------------------------------------------------------


def test_delete_removes_everything_of_one_sweep_in_one_go(lab: Bplab) -> None:
    spec = str(lab.write_spec("s.yaml", tiny_spec()))
    lab("sweep", "run", spec, "-w", "2")
    lab("sweep", "run", spec, "-w", "2")
    lab("sweep", "tag", "1", "owner=ana")
    with session_scope(lab.url) as session:  # a checkpoint and a running run of sweep 1
        session.execute(text("UPDATE runs SET status = 'running' WHERE id = 1"))
        session.execute(
            text(
                "INSERT INTO checkpoints (run_id, attempt, epoch, data, sha256) "
                "VALUES (1, 1, 5, :d, 'x')"
            ),
            {"d": b"state"},
        )
    assert "cancel it first" in one_line_exit_2(lab, "sweep", "delete", "1", "--yes")
    lab("sweep", "cancel", "1")
    refused = lab("sweep", "delete", "1", expect=1)  # asks; no answer is no
    assert "Aborted" in refused.output
    assert count(lab.url, "SELECT COUNT(*) FROM runs WHERE sweep_id = 1") == 4
    result = CliRunner().invoke(cli, ["sweep", "delete", "1"], env=lab.env, input="y\n")
    assert result.exit_code == 0, result.output
    assert "deleted sweep 1: 4 run(s)" in result.stderr
    for table in ("epoch_metrics", "run_weights", "checkpoints"):
        left = count(lab.url, f"SELECT COUNT(*) FROM {table} WHERE run_id <= 4")
        assert left == 0, table
    assert count(lab.url, "SELECT COUNT(*) FROM sweep_tags") == 0
    assert [s["id"] for s in lab.json("sweep", "list")] == [2]
    assert count(lab.url, "SELECT COUNT(*) FROM epoch_metrics") > 0  # sweep 2 keeps its rows
    assert "sweep 1 does not exist" in one_line_exit_2(lab, "sweep", "delete", "1", "--yes")


def test_rename_tag_note_and_list_filters(lab: Bplab) -> None:
    lab("sweep", "submit", "--help")  # the group loads with the new commands
    for name, dataset in (("xor-a", "xor"), ("xor-b", "xor"), ("par", "parity:2")):
        spec = lab.write_spec(f"{name}.yaml", tiny_spec(name=name, dataset=dataset))
        lab("sweep", "run", str(spec), "-w", "2")
    lab("sweep", "rename", "2", "xor-best")
    lab("sweep", "tag", "1", "owner=ana", "stage=draft")
    lab("sweep", "tag", "2", "owner=bob")
    lab("sweep", "tag", "3", "owner=ana", "stage=final")
    assert lab.json("sweep", "tag", "3", "--remove", "stage") == [{"key": "owner", "value": "ana"}]
    lab("sweep", "note", "1", "lr sweep, first try")

    def ids(*args: str) -> list[int]:
        return [s["id"] for s in lab.json("sweep", "list", *args)]

    assert ids() == [1, 2, 3]
    assert ids("--tag", "owner=ana") == [1, 3]
    assert ids("--tag", "owner=ana", "--tag", "stage") == [1]
    assert ids("--tag", "stage=final") == []
    assert ids("--name", "XOR") == [1, 2]
    assert ids("--name", "best") == [2]
    assert ids("--dataset", "parity") == [3]
    assert ids("--dataset", "xor", "--tag", "owner=bob") == [2]
    first = lab.json("sweep", "list")[0]
    assert first["tags"] == {"owner": "ana", "stage": "draft"}
    assert first["note"] == "lr sweep, first try"
    show = lab.json("sweep", "show", "1")[0]
    assert show["note"] == "lr sweep, first try" and show["tags"]["stage"] == "draft"
    assert lab.json("sweep", "show", "2")[0]["name"] == "xor-best"
    assert "no sweep matches" in lab("sweep", "list", "--tag", "owner=zed").stdout
    lab("sweep", "note", "1", "--clear")
    assert lab.json("sweep", "show", "1")[0]["note"] is None
    for args, message in {
        ("sweep", "tag", "1", "novalue"): "is not key=value",
        ("sweep", "tag", "1", "=x"): "is not key=value",
        ("sweep", "tag", "9", "a=b"): "sweep 9 does not exist",
        ("sweep", "list", "--tag", "=x"): "--tag",
        ("sweep", "rename", "1", " "): "1 to 200 characters",
        ("sweep", "rename", "9", "x"): "sweep 9 does not exist",
        ("sweep", "note", "1"): "give TEXT, or --clear",
        ("sweep", "note", "9", "x"): "sweep 9 does not exist",
    }.items():
        assert message in one_line_exit_2(lab, *args), args
    assert count(lab.url, "SELECT COUNT(*) FROM sweep_tags") == 4


# --- best ------------------------------------------------------------------------------------


def test_best_ranks_configurations_by_their_seeds_and_pairs_the_runner_up(lab: Bplab) -> None:
    spec = tiny_spec(
        seeds=3, parameters={"learning_rate": [0.25, 1.0, 2.0], "epochs": 80, "log_every": 10}
    )
    lab("sweep", "run", str(lab.write_spec("s.yaml", spec)), "-w", "2")
    runs = lab.json("runs", "1")
    by_lr: dict[float, list[dict]] = {}
    for r in runs:
        by_lr.setdefault(r["params"]["learning_rate"], []).append(r)

    def ranked(metric: str, reduce, reverse: bool) -> list[float]:
        value = {lr: reduce([r[metric] for r in rs]) for lr, rs in by_lr.items()}
        return sorted(value, key=value.get, reverse=reverse)

    (answer,) = lab.json("best", "1")
    assert answer["metric"] == "final_loss" and answer["goal"] == "min"
    order = ranked("final_loss", statistics.mean, False)
    assert answer["best"]["params"] == {"learning_rate": order[0]}
    assert answer["runner_up"]["params"] == {"learning_rate": order[1]}
    values = [r["final_loss"] for r in by_lr[order[0]]]
    assert answer["best"]["value"] == pytest.approx(statistics.mean(values))
    assert answer["best"]["sd"] == pytest.approx(statistics.stdev(values))
    assert answer["best"]["counted"] == 3 and answer["configs"] == 3
    assert answer["comparison"]["pairs"] == 3
    assert answer["comparison"]["metrics"][0]["metric"] == "final_loss"

    (acc,) = lab.json("best", "1", "--metric", "accuracy", "--aggregate", "median")
    assert acc["goal"] == "max"
    assert acc["best"]["value"] == max(
        statistics.median(r["accuracy"] for r in rs) for rs in by_lr.values()
    )
    (worst,) = lab.json("best", "1", "--goal", "max")
    assert worst["best"]["params"] == {"learning_rate": order[-1]}
    table = lab("best", "1").stdout
    assert "best:" in table and "runner-up:" in table and "paired by seed" in table
    for args, message in {
        ("best", "1", "--metric", "loss"): "unknown metric 'loss'",
        ("best", "1", "--goal", "up"): "--goal",
        ("best", "1", "--aggregate", "mode"): "--aggregate",
        ("best", "7"): "sweep 7 does not exist",
    }.items():
        assert message in one_line_exit_2(lab, *args), args


# --- settings: --db over the environment over bplab.toml ----------------------------------------


def test_db_option_beats_environment_beats_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BPLAB_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no user file
    urls = {k: f"sqlite:///{tmp_path / (k + '.db')}" for k in ("option", "env", "file")}
    (tmp_path / "bplab.toml").write_text(f'database_url = "{urls["file"]}"\n')
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(tiny_spec()))

    def run(env_url: str | None, *args: str) -> None:
        env = {"BPLAB_DATABASE_URL": env_url, "BPLAB_BROKER_URL": ""}
        result = CliRunner().invoke(cli, [*args, "sweep", "run", str(spec), "-w", "2"], env=env)
        assert result.exit_code == 0, result.output

    run(None)
    run(urls["env"])
    run(urls["env"], "--db", urls["option"])
    run(None, "--db", urls["option"])
    for key, n in (("file", 1), ("env", 1), ("option", 2)):
        assert count(urls[key], "SELECT COUNT(*) FROM sweeps") == n, key
    listing = CliRunner().invoke(
        cli,
        ["--db", urls["env"], "sweep", "list", "--format", "json"],
        env={"BPLAB_DATABASE_URL": urls["option"]},
    )
    assert len(json.loads(listing.stdout)) == 1
    bad = CliRunner().invoke(cli, ["--db", "nonsense://x", "sweep", "list"], env={})
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


# --- targets: multi-output CSV data from a spec -------------------------------------------------


def test_spec_targets_name_the_csv_output_columns(lab: Bplab) -> None:
    (lab.cwd / "two.csv").write_text("a,b,y1,y2\n0,0,0,1\n0,1,1,0\n1,0,1,0\n1,1,0,1\n")
    spec = tiny_spec(dataset="csv:two.csv", targets=["y1", "y2"])
    lab("sweep", "run", str(lab.write_spec("s.yaml", spec)), "-w", "2")
    show = lab.json("sweep", "show", "1")[0]
    assert show["spec"]["targets"] == ["y1", "y2"]
    assert show["dataset"].endswith('two.csv;targets=["y1", "y2"]')
    lab("run", "weights", "1", "-o", str(lab.cwd / "w.npz"))
    import numpy as np

    with np.load(lab.cwd / "w.npz") as w:
        assert w["W1"].shape == (2, 2) and w["W2"].shape == (2, 2)  # 2 inputs, 2 outputs
    assert {r["status"] for r in lab.json("runs", "1")} == {"succeeded"}
    lab("sweep", "extend", "1", "--seeds", "3", "-w", "2")  # the same file, the same targets
    assert count(lab.url, "SELECT COUNT(*) FROM runs") == 6
    for targets, message in (
        (["y1", "zz"], "no column named 'zz'"),
        ([], "empty list"),
        (["y1", "y1"], "names a column twice"),
        ([0, 1, 2, 3], "leave at least one input column"),
        ([True], "targets[0]: must be a column name or a column index"),
    ):
        bad = lab.write_spec("bad.yaml", tiny_spec(dataset="csv:two.csv", targets=targets))
        line = one_line_exit_2(lab, "sweep", "run", str(bad))
        assert "targets" in line and message in line, targets
    xor = lab.write_spec("xor.yaml", tiny_spec(targets="y"))
    assert "names columns of a csv: dataset" in one_line_exit_2(lab, "sweep", "plan", str(xor))
    assert count(lab.url, "SELECT COUNT(*) FROM sweeps") == 1
