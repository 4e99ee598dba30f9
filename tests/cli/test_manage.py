"""Issue 19 through the CLI on SQLite and PostgreSQL: sweep extend, delete, rename, tag, note,
list filters, bplab best, provenance of data files and --db; bad input is one line, exit 2,
nothing written."""

from __future__ import annotations

import hashlib
import json
import statistics
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from service.cli import cli
from service.db.session import session_scope
from tests.cli.conftest import Bplab


def tiny_spec(**overrides: object) -> dict:
    """2 learning rates x 2 seeds of XOR, 60 epochs: a sweep that trains in a blink."""
    spec = {
        "name": "tiny",
        "dataset": "xor",
        "seeds": 2,
        "parameters": {"learning_rate": [0.5, 2.0], "epochs": 60, "log_every": 10},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def lab(db_url: str, tmp_path: Path) -> Bplab:
    return Bplab(db_url, tmp_path)


def count(url: str, sql: str) -> int:
    with session_scope(url, readonly=True) as session:
        return int(session.execute(text(sql)).scalar() or 0)


def cells(lab: Bplab, sweep_id: int = 1) -> list[tuple[float, int]]:
    return sorted(
        (r["params"]["learning_rate"], r["seed"]) for r in lab.json("runs", str(sweep_id))
    )


def one_line_exit_2(lab: Bplab, *args: str) -> str:
    result = lab(*args, expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- extend --------------------------------------------------------------------------------


def test_extend_adds_each_missing_cell_once_and_trains_it(lab: Bplab) -> None:
    lab("sweep", "run", str(lab.write_spec("s.yaml", tiny_spec())), "-w", "2")
    assert cells(lab) == [(0.5, 0), (0.5, 1), (2.0, 0), (2.0, 1)]

    out = lab("sweep", "extend", "1", "--seeds", "3", "-w", "2")
    assert "added 2 run(s) (new seeds 2, 0 new configuration(s))" in out.stderr
    assert cells(lab) == [(lr, s) for lr in (0.5, 2.0) for s in (0, 1, 2)]

    again = lab("sweep", "extend", "1", "--seeds", "3")  # nothing missing: nothing added
    assert "nothing to add" in again.stderr
    lab("sweep", "extend", "1", "--seeds", "1,2,4", "-w", "2")  # only seed 4 is new
    assert cells(lab) == [(lr, s) for lr in (0.5, 2.0) for s in (0, 1, 2, 4)]

    more = lab.write_spec(
        "more.yaml", tiny_spec(parameters={"learning_rate": 1.0, "epochs": 60, "log_every": 10})
    )
    out = lab("sweep", "extend", "1", "--spec", str(more), "-w", "2")
    assert "added 4 run(s) (no new seeds, 1 new configuration(s))" in out.stderr
    expected = [(lr, s) for lr in (0.5, 1.0, 2.0) for s in (0, 1, 2, 4)]
    assert cells(lab) == expected
    runs = lab.json("runs", "1")
    assert {r["status"] for r in runs} == {"succeeded"}
    (sweep,) = lab.json("sweep", "list")
    assert sweep["runs"] == 12 and sweep["succeeded"] == 12
    show = lab.json("sweep", "show", "1")[0]
    assert show["spec"]["seeds"] == [0, 1, 2, 4]
    assert show["spec"]["parameters"]["learning_rate"] == [0.5, 2.0, 1.0]
    assert show["swept"] == ["learning_rate"]
    assert len(lab.json("results", "1")) == 3
    # a spec that names its seeds brings them too, for every configuration
    seeded = lab.write_spec(
        "seeded.yaml",
        tiny_spec(seeds=[7], parameters={"learning_rate": 0.5, "epochs": 60, "log_every": 10}),
    )
    lab("sweep", "extend", "1", "--spec", str(seeded), "-w", "2")
    assert len(cells(lab)) == 15 and {s for _, s in cells(lab)} == {0, 1, 2, 4, 7}


def test_extend_of_a_sweep_recorded_before_later_parameters_adds_no_cell_twice(
    lab: Bplab,
) -> None:
    # A sweep recorded before decay, error_margin, patience, ... existed: its configurations
    # lack those keys. The same spec expanded today holds them at their neutral values, and is
    # still the same configuration: extending by it adds nothing, and new seeds come once.
    spec = lab.write_spec("s.yaml", tiny_spec())
    lab("sweep", "run", str(spec), "-w", "2")
    later = ("decay", "decay_biases", "error_margin", "patience", "min_delta", "restore_best")
    later += ("kernels", "field", "wrap", "recurrent")  # issue 21
    keys_before = {r["id"]: r["config_key"] for r in _run_keys(lab.url)}
    with session_scope(lab.url) as session:
        for run_id, config in session.execute(text("SELECT id, config FROM runs")).all():
            config = json.loads(config) if isinstance(config, str) else config
            assert set(later) <= set(config)
            old = {k: v for k, v in config.items() if k not in later}
            session.execute(
                text("UPDATE runs SET config = :c WHERE id = :i"),
                {"c": json.dumps(old), "i": run_id},
            )
    assert "nothing to add" in lab("sweep", "extend", "1", "--spec", str(spec)).stderr
    out = lab("sweep", "extend", "1", "--spec", str(spec), "--seeds", "3", "-w", "2")
    assert "added 2 run(s) (new seeds 2, 0 new configuration(s))" in out.stderr
    assert cells(lab) == [(lr, s) for lr in (0.5, 2.0) for s in (0, 1, 2)]
    keys = {r["id"]: r["config_key"] for r in _run_keys(lab.url)}
    assert {keys[i] for i in keys_before} == set(keys_before.values())
    assert len(set(keys.values())) == 2  # two configurations, old runs and new alike
    # a later parameter away from its neutral value is another configuration
    patient = tiny_spec()
    patient["parameters"] = {**patient["parameters"], "learning_rate": 0.5, "patience": 5}
    out = lab("sweep", "extend", "1", "--spec", str(lab.write_spec("p.yaml", patient)), "-w", "2")
    assert "1 new configuration(s)" in out.stderr


def _run_keys(url: str) -> list[dict]:
    with session_scope(url, readonly=True) as session:
        rows = session.execute(text("SELECT id, config_key FROM runs ORDER BY id")).all()
    return [{"id": i, "config_key": k} for i, k in rows]


def test_extend_refuses_bad_input_and_writes_nothing(lab: Bplab) -> None:
    lab("sweep", "run", str(lab.write_spec("s.yaml", tiny_spec())), "-w", "2")
    other = lab.write_spec("other.yaml", tiny_spec(dataset="parity:2"))
    broken = lab.write_spec("broken.yaml", tiny_spec(parameters={"lerning_rate": 1}))
    cases = {
        ("sweep", "extend", "1"): "give --seeds and/or --spec",
        ("sweep", "extend", "1", "--seeds", "abc"): "--seeds",
        ("sweep", "extend", "1", "--seeds", "0"): "--seeds: a count must be in",
        ("sweep", "extend", "1", "--seeds", "2,2"): "names a seed twice",
        ("sweep", "extend", "1", "--seeds", "3,-1"): "--seeds",
        ("sweep", "extend", "1", "--seeds", "100001"): "--seeds",
        ("sweep", "extend", "9", "--seeds", "3"): "sweep 9 does not exist",
        ("sweep", "extend", "1", "--spec", str(other)): "a sweep has one dataset",
        ("sweep", "extend", "1", "--spec", str(broken)): "lerning_rate",
        ("sweep", "extend", "1", "--spec", "missing.yaml"): "no such file",
        ("sweep", "extend", "1", "--seeds", "50", "--max-runs", "10"): "more than the limit of 10",
    }
    for args, message in cases.items():
        assert message in one_line_exit_2(lab, *args), args
    assert count(lab.url, "SELECT COUNT(*) FROM runs") == 4


def test_extend_of_a_celery_sweep_publishes_only_the_new_runs(pg_database: str, tmp_path) -> None:
    import redis

    from service.producer import run_ids_in_broker
    from tests.conftest import _truncate_all

    _truncate_all(pg_database)
    queue = f"bplab_extend_{uuid.uuid4().hex[:10]}"
    broker = "redis://127.0.0.1:6379/12"
    lab = Bplab(pg_database, tmp_path)
    lab.env.update(BPLAB_BROKER_URL=broker, BPLAB_QUEUE=queue)
    client = redis.Redis.from_url(broker)
    try:
        lab("sweep", "submit", str(lab.write_spec("s.yaml", tiny_spec())))
        client.delete(queue)  # as if the workers had trained the first four
        out = lab("sweep", "extend", "1", "--seeds", "3")
        assert "2 more run(s) queued" in out.stderr
        new = {r["id"] for r in lab.json("runs", "1") if r["seed"] == 2}
        assert len(new) == 2 and run_ids_in_broker(broker, queue) == new
        client.delete(queue)
        assert "nothing to add" in lab("sweep", "extend", "1", "--seeds", "3").stderr
        assert client.llen(queue) == 0
        lab.env["BPLAB_BROKER_URL"] = ""
        assert "set BPLAB_BROKER_URL" in one_line_exit_2(
            lab, "sweep", "extend", "1", "--seeds", "4"
        )
    finally:
        client.delete(queue)
        client.close()


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


# --- provenance -------------------------------------------------------------------------------


def test_changed_data_file_refuses_extend_resume_and_retry(lab: Bplab) -> None:
    data = lab.cwd / "data.csv"
    original = "a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
    data.write_text(original)
    spec = tiny_spec(dataset="csv:data.csv")
    lab("sweep", "run", str(lab.write_spec("s.yaml", spec)), "-w", "2")
    show = lab.json("sweep", "show", "1")[0]
    assert show["data_sha256"] == hashlib.sha256(original.encode()).hexdigest()

    data.write_text(original.replace("1,1,0", "1,1,1"))
    for args in (
        ("sweep", "extend", "1", "--seeds", "3"),
        ("sweep", "resume", "1"),
        ("sweep", "retry", "1"),
    ):
        line = one_line_exit_2(lab, *args)
        assert "has changed since the sweep was recorded" in line and str(data) in line, args
    data.unlink()
    assert "is gone" in one_line_exit_2(lab, "sweep", "extend", "1", "--seeds", "3")
    assert count(lab.url, "SELECT COUNT(*) FROM runs") == 4
    data.write_text(original)  # the same bytes again: allowed
    lab("sweep", "extend", "1", "--seeds", "3", "-w", "2")
    assert count(lab.url, "SELECT COUNT(*) FROM runs") == 6


def test_finished_runs_keep_no_checkpoint(lab: Bplab) -> None:
    lab.env["BPLAB_CHECKPOINT_EVERY"] = "20"  # checkpoints along the way
    spec = tiny_spec(parameters={"learning_rate": [0.5, 2.0], "epochs": 120, "log_every": 10})
    lab("sweep", "run", str(lab.write_spec("s.yaml", spec)), "-w", "2")
    assert count(lab.url, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'") == 4
    assert count(lab.url, "SELECT COUNT(*) FROM checkpoints") == 0


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
