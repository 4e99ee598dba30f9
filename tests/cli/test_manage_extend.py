"""Issue 19 through the CLI on SQLite and PostgreSQL: `sweep extend` (new seeds, new
configurations, once each; a Celery sweep publishes only its new runs), the data file's
provenance refusing extend, resume and retry once it changed, no checkpoint kept by a
finished run; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import text

from service.db.session import session_scope
from tests.cli.conftest import Bplab, count, one_line_exit_2, tiny_spec


def cells(lab: Bplab, sweep_id: int = 1) -> list[tuple[float, int]]:
    return sorted(
        (r["params"]["learning_rate"], r["seed"]) for r in lab.json("runs", str(sweep_id))
    )


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
