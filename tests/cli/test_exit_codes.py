"""Issue 18, item 6 (and 4's --workers warning): a sweep with failed runs exits 1 and names
each failed configuration's first error; a second `sweep resume` of a sweep another process
trains is refused; more workers than cores is a warning. The real CLI, on SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time

from tests.cli.conftest import Bplab


def _record_then_break_the_data(bplab: Bplab) -> None:
    """A 2-config x 2-seed sweep on a CSV file that is valid when recorded, then emptied:
    the one way left for runs to fail (the file is checked when the spec is)."""
    data = bplab.cwd / "data.csv"
    data.write_text("a,y\n0,0\n1,1\n2,0\n3,1\n")
    spec = bplab.cwd / "spec.yaml"
    spec.write_text(
        "dataset: csv:data.csv\nseeds: 2\nparameters: {learning_rate: [0.1, 0.5], epochs: 5}\n"
    )
    from service.db.session import session_scope
    from service.spec import load_spec
    from service.sweeps import create_sweep_from_spec

    with session_scope(bplab.url) as session:
        sweep_id = create_sweep_from_spec(session, load_spec(spec), backend="local")
        # as if recorded before data files were hashed: resume refuses a changed file (issue 19)
        from service.db.management import set_data_hash

        set_data_hash(session, sweep_id, None)
    data.write_text("a,y\n0,zero\n")


def test_failed_runs_exit_1_naming_each_configuration(bplab: Bplab) -> None:
    _record_then_break_the_data(bplab)
    result = bplab("sweep", "resume", "1", "--workers", "1", expect=1)
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2, result.stderr  # one line per configuration, not per run
    assert failed[0].startswith("failed: learning_rate=0.1 (2 run(s), first run 1): ")
    assert failed[1].startswith("failed: learning_rate=0.5 (2 run(s), first run 3): ")
    assert all("not a number: 'zero'" in line for line in failed), failed
    assert "bplab sweep retry 1 --failed" in result.stderr
    assert "learning_rate" in result.stdout  # the results table is printed all the same


def test_second_resume_of_a_live_sweep_is_refused(bplab: Bplab) -> None:
    bplab.write_spec(
        "long.yaml",
        {"dataset": "symmetry:6", "seeds": 2, "parameters": {"hidden": 2, "epochs": 200000}},
    )
    first = bplab.subprocess(
        "sweep",
        "run",
        "long.yaml",
        "--workers",
        "1",
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = bplab.url.removeprefix("sqlite:///")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(db) as conn:
                    beating = conn.execute(
                        "SELECT COUNT(*) FROM runs WHERE status='running' AND heartbeat_at "
                        "IS NOT NULL"
                    ).fetchone()[0]
            except sqlite3.OperationalError:
                beating = 0
            if beating:
                break
            time.sleep(0.2)
        result = bplab("sweep", "resume", "1", "--workers", "1", expect=2)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "is being trained by another process" in lines[0], lines
    finally:
        os.killpg(first.pid, 9)
        first.wait(timeout=60)


def test_more_workers_than_cores_warns(bplab: Bplab) -> None:
    spec = str(bplab.write_spec("xor.yaml", {"dataset": "xor", "parameters": {"epochs": 5}}))
    cores = os.cpu_count() or 1
    result = bplab("sweep", "run", spec, "--workers", str(cores + 1))
    assert f"warning: --workers {cores + 1} on {cores} core(s)" in result.stderr
    result = bplab("sweep", "run", spec, "--workers", "1")
    assert "warning" not in result.stderr
