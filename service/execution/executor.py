"""The one executor: claim a group of runs, train the claimed ones population by population,
and leave each run in a final state (or handed back to the queue).

The local pool (service.local) and the Celery tasks (worker.tasks) both call ``execute_runs``;
``execute_run`` is a group of one. Each run is claimed on its own (queued -> running,
attempt + 1): a second delivery of the same task finds it claimed and does nothing. Runs of
different shapes in one call (service.grouping.shape_key) are trained as separate
populations, one after the other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from service import reliability
from service.db import repository as repo
from service.db.retry import with_retry
from service.db.session import session_scope
from service.execution.group import Member, Population
from service.execution.job import RunJob, default_worker_name
from service.grouping import shape_key


def execute_runs(
    run_ids: Sequence[int],
    *,
    worker: str | None = None,
    url: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    release_on: tuple[type[BaseException], ...] = (),
) -> dict[int, str | None]:
    """Claim and train a group of runs; {run_id: final status}, None for a run that was not
    ours to train: already claimed or finished (a second delivery of the same task), or taken
    over by a newer attempt while we trained (fenced out).

    ``should_stop`` is polled every epoch; when it says yes the runs go back to ``queued``
    with their exact state as checkpoint, so ``bplab sweep resume`` continues them ("queued").
    An exception of a type in ``release_on`` (the Celery task passes SoftTimeLimitExceeded)
    also hands the runs back to ``queued`` with their last checkpoint, unless a run has used up
    its attempts (BPLAB_MAX_ATTEMPTS) and took no checkpoint in this one: then it fails.
    "cancelled" when a run was cancelled while it trained. A database that stays unreachable
    for longer than BPLAB_DB_RETRY_SECONDS raises: the runs are left to the reconciler (their
    leases expire).
    """
    worker = worker or default_worker_name()
    retry_s = reliability.db_retry_seconds()
    statuses: dict[int, str | None] = {int(r): None for r in run_ids}

    def claim() -> list[tuple[int, int, dict[str, Any], int, int, tuple[int, bytes] | None]]:
        with session_scope(url) as session:
            # each run claimed on its own terms (queued -> running, its own attempt), in one
            # statement; then what training needs of the claimed ones, in two queries
            attempts = repo.claim_runs(session, run_ids, worker)
            if not attempts:
                return []
            runs = repo.claimed_runs(session, list(attempts))
            checkpoints = repo.claimed_checkpoints(session, attempts)
        return [(r, a, *runs[r], checkpoints.get(r)) for r, a in attempts.items()]

    claimed = with_retry(claim, seconds=retry_s, what=f"runs {list(run_ids)[:5]}...: claim")
    crash = reliability.crash_run_ids()
    members = []
    for run_id, attempt, config, seed, retry_base, checkpoint in claimed:
        if run_id in crash:
            os._exit(1)  # fault injection (tests/faults): see reliability.crash_run_ids
        job = RunJob(run_id, attempt, url, retry_s)
        members.append(Member(run_id, attempt, config, seed, retry_base, checkpoint, job))
    shapes: dict[str, list[Member]] = {}
    for m in members:
        shapes.setdefault(shape_key(m.config, m.seed), []).append(m)
    limit: BaseException | None = None
    for group in shapes.values():
        population = Population(group, url, should_stop, release_on)
        if limit is None:
            population.run()
            limit = population.limit_reached
        else:  # the task's time limit came in an earlier population: this one goes back as is
            population.hand_back(group, limit)
        for m in group:
            statuses[m.run_id] = m.status
    return statuses


def execute_run(
    run_id: int,
    *,
    worker: str | None = None,
    url: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    release_on: tuple[type[BaseException], ...] = (),
) -> str | None:
    """``execute_runs`` for a group of one: the run's final status, or None (not ours)."""
    statuses = execute_runs(
        [run_id], worker=worker, url=url, should_stop=should_stop, release_on=release_on
    )
    return statuses[int(run_id)]


__all__ = ["execute_run", "execute_runs"]
