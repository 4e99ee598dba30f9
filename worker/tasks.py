"""The tasks a bplab worker runs. Thin on purpose: the logic is in service.runner, shared with the
local pool, so a run behaves the same wherever it is trained.

Tasks take run ids, never run data, and re-read everything from the database: the claim there
(only a ``queued`` run becomes ``running``) is what makes a duplicated delivery harmless.
"""

from __future__ import annotations

from celery.utils.log import get_task_logger

from service.producer import TRAIN_RUN, TRAIN_RUNS
from service.runner import default_worker_name, execute_run
from worker.app import app

log = get_task_logger(__name__)


@app.task(name=TRAIN_RUN)
def train_run(*, run_id: int) -> str | None:
    """Train run ``run_id`` to a final status; returns it, or None if the run was not ours."""
    status = execute_run(int(run_id), worker=default_worker_name())
    if status is None:
        log.info("run %s: already claimed or finished, nothing to do", run_id)
    return status


@app.task(name=TRAIN_RUNS)
def train_runs(*, run_ids: list[int]) -> dict[str, str | None]:
    """Train a group of runs, one after the other, each claimed on its own.

    The message shape of population training (issue 8), which will train same-shape groups at
    once; until then a group is the same as one ``bplab.train_run`` per id.
    """
    worker = default_worker_name()
    return {str(run_id): execute_run(int(run_id), worker=worker) for run_id in run_ids}
