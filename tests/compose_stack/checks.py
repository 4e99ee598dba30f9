"""What the compose run checks on the database once the sweep is over (see harness.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from service.db import repository as repo
from service.db.session import session_scope
from tests.compose_stack.engine import DockerEngine
from tests.compose_stack.host import bplab, database_url, query
from tests.compose_stack.provision import say
from tests.compose_stack.reference import SCRIPT, hexed, jobs_json, weights_digest
from tests.faults.harness import due_epochs, reference, runs_of


def check_results(engine: DockerEngine, url: str, sweep_id: int) -> None:
    """check_sweep's invariants (tests/faults/harness.py), against clean runs in the image.

    Every run succeeded; exactly one row per recorded epoch, no gap, each equal to the clean
    run's to the last bit; one weights row per run, equal to the clean run's weights.
    """
    runs = runs_of(SimpleNamespace(database_url=url), sweep_id)  # type: ignore[arg-type]
    clean = json.loads(
        engine.docker("run", "--rm", "-i", "--network", "none", "bplab:latest",
                      "python", "-c", SCRIPT, input=jobs_json(runs)).stdout
    )  # fmt: skip
    dupes = query(
        url,
        "SELECT e.run_id, e.epoch FROM epoch_metrics e JOIN runs r ON r.id = e.run_id "
        "WHERE r.sweep_id = :s GROUP BY e.run_id, e.epoch HAVING count(*) > 1",
        s=sweep_id,
    )
    assert not dupes, f"duplicated epoch rows: {dupes[:5]}"
    for run in runs:
        assert run["status"] == "succeeded", f"run {run['id']}: {run['status']} {run['error']}"
        config = run["config"] if isinstance(run["config"], dict) else json.loads(run["config"])
        with session_scope(url, readonly=True) as session:
            rows = repo.epoch_rows(session, run["id"])
            stored = repo.load_weights(session, run["id"])
        ref = clean[str(run["id"])]
        epochs = [r.epoch for r in rows]
        assert (
            epochs
            == due_epochs(run["epochs_run"], config["log_every"])
            == sorted(int(e) for e in ref["metrics"])
        ), f"run {run['id']}: epochs {epochs[:5]}..."
        for row in rows:
            got = [hexed(row.loss), hexed(row.accuracy), hexed(row.max_error)]
            assert got == ref["metrics"][str(row.epoch)], (
                f"run {run['id']} epoch {row.epoch}: {got} != {ref['metrics'][str(row.epoch)]}"
            )
        assert run["weights"] == 1 and weights_digest(stored) == ref["weights"], run["id"]
    say(f"{len(runs)} runs: one row per recorded epoch, rows and weights bit-identical to clean "
        "runs of the same seeds in the bplab image")  # fmt: skip
    compare_with_this_host(url, runs[0])


def compare_with_this_host(url: str, run: dict) -> None:
    """Reported, not asserted: the same run trained by this host's Python and NumPy."""
    config = run["config"] if isinstance(run["config"], dict) else json.loads(run["config"])
    weights, metrics = reference(json.dumps(config, sort_keys=True), int(run["seed"]))
    with session_scope(url, readonly=True) as session:
        rows = repo.epoch_rows(session, run["id"])
        stored = repo.load_weights(session, run["id"])
    differ = [
        r.epoch
        for r in rows
        if (r.loss, r.accuracy, r.max_error)
        != (metrics[r.epoch]["loss"], metrics[r.epoch]["accuracy"], metrics[r.epoch]["max_error"])
    ]

    def bits(x: float) -> int:
        return int(np.float64(x).view(np.int64))

    ulps = max((abs(bits(r.loss) - bits(metrics[r.epoch]["loss"])) for r in rows), default=0)
    same_weights = weights_digest(stored) == weights_digest(weights)
    say(f"run {run['id']} against this host's own training: {len(differ)} of {len(rows)} rows "
        f"differ (first at epoch {differ[0] if differ else '-'}, losses at most {ulps} ulp "
        f"apart), weights {'identical' if same_weights else 'differ'}")  # fmt: skip


def check_attempts(url: str, sweep_id: int, killed: str, interrupted: set[int]) -> None:
    """The killed runs were claimed once more, elsewhere; all others exactly once."""
    rows = query(url, "SELECT id, attempt, worker FROM runs WHERE sweep_id = :s", s=sweep_id)
    for run_id, attempt, worker in rows:
        if run_id in interrupted:
            assert attempt == 2, f"run {run_id}: attempt {attempt}"
            assert not worker.startswith(killed), f"run {run_id} finished on the killed {worker}"
        else:
            assert attempt == 1, f"run {run_id} was claimed {attempt} times"
    say(
        f"attempts: {len(interrupted)} runs taken over once, "
        f"{len(rows) - len(interrupted)} ran once"
    )


def check_roles(env: dict[str, str], tmp: Path, sweep_id: int, runs: int) -> None:
    """The workers' role is no superuser; `bplab sql` reads as bplab_reader and cannot write."""
    ((user, superuser),) = query(
        database_url(env),
        "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    assert (user, superuser) == ("bplab", False), (user, superuser)
    out = bplab(env, "sql", f"SELECT count(*) AS n FROM runs WHERE sweep_id = {sweep_id}",
                "--format", "json", cwd=tmp).stdout  # fmt: skip
    assert json.loads(out)[0]["n"] == runs, out
    refused = bplab(env, "sql", "DELETE FROM epoch_metrics", cwd=tmp, ok=False)
    assert refused.returncode != 0, refused.stdout
    bplab(env, "results", str(sweep_id), cwd=tmp)
    say("roles: workers as bplab (no superuser); bplab sql read the runs and refused a DELETE")
