"""The tasks a bplab worker runs. Thin on purpose: the logic is in service.execution, shared
with the local pool, so a run behaves the same wherever it is trained.

Tasks take run ids, never run data, and re-read everything from the database: the claim there
(only a ``queued`` run becomes ``running``) is what makes a duplicated delivery harmless.

Plain functions: worker.app registers them on the app (``TASKS``). This module imports nothing
from worker.app, so the two no longer import each other (the app imports its tasks, not the
other way).
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from service.config import get_settings
from service.dispatch import DispatchError, publish_stored
from service.execution import default_worker_name, execute_runs
from service.producer import TRAIN_RUN, TRAIN_RUNS

log = get_task_logger(__name__)


def _execute(run_ids: list[int]) -> dict[int, str | None]:
    # Past the soft time limit the runs go back to the queue with their last checkpoints (the
    # next attempt continues from there) instead of failing; BPLAB_MAX_ATTEMPTS bounds it.
    statuses = execute_runs(
        run_ids, worker=default_worker_name(), release_on=(SoftTimeLimitExceeded,)
    )
    handed_back = [r for r, status in statuses.items() if status == "queued"]
    if handed_back:
        _publish_again(handed_back)
    return statuses


def _publish_again(run_ids: list[int]) -> None:
    """The runs handed back go out again together, as they came (service.dispatch)."""
    settings = get_settings()
    try:
        publish_stored(None, run_ids, settings.broker_url or "", queue=settings.queue, min_groups=1)
        log.warning("runs %s: time limit reached; re-queued from their last checkpoints", run_ids)
    except DispatchError as exc:
        log.warning("runs %s: re-queued, not published (%s); the reconciler will", run_ids, exc)


def train_run(*, run_id: int) -> str | None:
    """Train run ``run_id`` to a final status; returns it, or None if the run was not ours."""
    status = _execute([int(run_id)])[int(run_id)]
    if status is None:
        log.info("run %s: already claimed or finished, nothing to do", run_id)
    return status


def train_runs(*, run_ids: list[int]) -> dict[str, str | None]:
    """Train a group of runs as populations (same-shape runs at once), each claimed and
    recorded on its own (service.execution.execute_runs); runs handed back at the time
    limit are published again, as in ``bplab.train_run``."""
    statuses = _execute([int(r) for r in run_ids])
    return {str(run_id): status for run_id, status in statuses.items()}


# Task name -> function; worker.app makes each a Celery task under that name (the names are
# service.producer's, which publishes them without importing the worker).
TASKS = {TRAIN_RUN: train_run, TRAIN_RUNS: train_runs}
