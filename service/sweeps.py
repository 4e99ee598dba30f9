"""Sweep operations shared by the CLI commands: create from a spec, run locally, resume."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from service.db import repository as repo
from service.db.session import session_scope
from service.local import PoolReport, run_in_pool
from service.spec import SweepSpec

# A local run whose heartbeat is older than this is taken to belong to a process that died
# (the recorder refreshes it at least every couple of seconds while training).
LOCAL_LEASE_SECONDS = 30.0


def create_sweep_from_spec(session: Session, spec: SweepSpec, *, backend: str) -> int:
    """Write the sweep and every run of its expansion in the caller's transaction."""
    from service.management import record_provenance

    runs = [{"config": r.config, "seed": r.seed} for r in spec.expand()]
    sweep_id = repo.create_sweep(
        session,
        name=spec.name,
        dataset=spec.dataset,
        method=spec.method,
        spec=spec.spec_dict,
        swept=list(spec.swept),
        backend=backend,
        runs=runs,
    )
    record_provenance(session, sweep_id, spec.dataset)  # the data file's sha256 (issue 19)
    return sweep_id


def run_queued_locally(
    sweep_id: int,
    *,
    workers: int,
    url: str | None = None,
    on_done: Callable[[int, str | None], None] | None = None,
) -> PoolReport:
    """Train every queued run of the sweep in a local pool; returns what happened to each."""
    with session_scope(url) as session:
        run_ids = repo.run_ids(session, sweep_id, status="queued")
    return run_in_pool(run_ids, workers=workers, url=url, on_done=on_done)


def requeue_abandoned(sweep_id: int, *, url: str | None = None, force: bool = False) -> int:
    """Put back to ``queued`` the runs a dead local process left ``running``; returns how many."""
    with session_scope(url) as session:
        return repo.requeue_stale_runs(
            session, sweep_id, older_than_s=0.0 if force else LOCAL_LEASE_SECONDS
        )
