"""Issue 18 items 6 and 4 (the rest): the bar moves with the epochs of running runs before
any run finishes; `sweep submit` prints its estimate and refuses only a run no worker holds."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

from tests.cli.conftest import BPLAB, Bplab

LONG = {
    "name": "long",
    "dataset": "parity:4",
    "seeds": 1,
    # about 2.5 s of training here: the bar polls every second, and the rows it counts are
    # written every heartbeat (half a second with the lease below); at 40,000 epochs the run
    # was over before the first of them was seen now and then
    "parameters": {"hidden": 4, "epochs": 100000, "stop_within": None, "log_every": 100},
}


def test_bar_moves_with_epochs_before_a_run_finishes(db_url: str, tmp_path: Path) -> None:
    bp = Bplab(db_url, tmp_path)
    spec = bp.write_spec("long.yaml", LONG)
    # FORCE_COLOR makes rich draw its live bar into the pipe as it would on a terminal
    env = {**os.environ, **bp.env, "FORCE_COLOR": "1", "COLUMNS": "160"}
    env["BPLAB_LEASE_SECONDS"] = "2"  # a heartbeat, and so a write of rows, every 0.5 s
    done = subprocess.run(
        [*BPLAB, "sweep", "run", str(spec), "--workers", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frames = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr).replace("\r", "\n").splitlines()
    moving = {m.group(1) for f in frames if (m := re.search(r"0/1 0 failed, ([\d,]+) epochs", f))}
    assert moving, done.stderr[-2000:]  # epochs counted while the only run was unfinished


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"bplab-test-{uuid.uuid4().hex[:8]}"
    yield name
    redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(name)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # submit refuses SQLite
def test_submit_prints_estimate_and_refuses_what_fits_nowhere(
    db_url: str, tmp_path: Path, queue: str
) -> None:
    bp = Bplab(db_url, tmp_path)
    bp.env.update(BPLAB_BROKER_URL="redis://127.0.0.1:6379/0", BPLAB_QUEUE=queue)
    small = bp.write_spec(
        "small.yaml", {**LONG, "parameters": {**LONG["parameters"], "epochs": 10}}
    )
    out = bp("sweep", "submit", str(small))
    assert "estimate (rough, no early stop): up to" in out.stderr and "on one worker" in out.stderr
    huge = {**LONG, "parameters": {**LONG["parameters"], "hidden": [[100000, 100000]]}}
    refused = bp("sweep", "submit", str(bp.write_spec("huge.yaml", huge)), expect=2)
    assert "more than any worker is likely to have" in refused.output
    assert refused.output.count("\n") == 1
    assert len(bp.json("sweep", "list")) == 1  # nothing written for the refused one
