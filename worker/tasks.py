"""The tasks a bplab worker runs. Thin on purpose: the logic is in service.execution, shared
with the local pool, so a run behaves the same wherever it is trained.

Tasks take run ids, never run data, and re-read everything from the database: the claim there
(only a ``queued`` run becomes ``running``) is what makes a duplicated delivery harmless.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

from service.celery_config import queue_name
from service.config import get_settings
from service.execution import default_worker_name, execute_run, execute_runs
from service.producer import TRAIN_RUN, TRAIN_RUNS, BrokerUnavailable, publish_runs
from worker.app import app

log = get_task_logger(__name__)


def _execute(run_id: int, worker: str) -> str | None:
    # Past the soft time limit the run goes back to the queue with its last checkpoint (the
    # next attempt continues from there) instead of failing; BPLAB_MAX_ATTEMPTS bounds it.
    status = execute_run(run_id, worker=worker, release_on=(SoftTimeLimitExceeded,))
    if status == "queued":
        _publish_again(run_id)
    return status


def _publish_again(run_id: int) -> None:
    broker_url = get_settings().broker_url
    try:
        publish_runs([run_id], broker_url or "", queue=queue_name())
        log.warning("run %s: time limit reached; re-queued from its last checkpoint", run_id)
    except BrokerUnavailable as exc:
        log.warning("run %s: re-queued, not published (%s); the reconciler will", run_id, exc)


@app.task(name=TRAIN_RUN)
def train_run(*, run_id: int) -> str | None:
    """Train run ``run_id`` to a final status; returns it, or None if the run was not ours."""
    status = _execute(int(run_id), default_worker_name())
    if status is None:
        log.info("run %s: already claimed or finished, nothing to do", run_id)
    return status


@app.task(name=TRAIN_RUNS)
def train_runs(*, run_ids: list[int]) -> dict[str, str | None]:
    """Train a group of runs as populations (same-shape runs at once), each claimed and
    recorded on its own (service.execution.execute_runs); runs handed back at the time
    limit are published again, as in ``bplab.train_run``."""
    statuses = execute_runs(
        [int(r) for r in run_ids],
        worker=default_worker_name(),
        release_on=(SoftTimeLimitExceeded,),
    )
    for run_id, status in statuses.items():
        if status == "queued":
            _publish_again(run_id)
    return {str(run_id): status for run_id, status in statuses.items()}
