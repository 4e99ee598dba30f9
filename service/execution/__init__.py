"""The one executor: every run, on the local pool or a Celery worker, goes through
``execute_runs`` (a single run is a group of one): claim, train, record, checkpoint, finish,
fail, hand back.

- ``executor``: the claim and the life of a group (``execute_runs``, ``execute_run``);
- ``group``: one population of same-shape runs trained with ``engine.train_population`` and
  recorded run by run, every write fenced by the run's own attempt;
- ``job``: one attempt at one run (fail, release, what to do when fenced out) and the
  checkpoint pacing;
- ``recording``: a run's buffered epoch rows and its summary.
"""

from service.execution.executor import execute_run, execute_runs
from service.execution.job import default_worker_name

__all__ = ["default_worker_name", "execute_run", "execute_runs"]
