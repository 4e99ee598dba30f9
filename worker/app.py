"""The Celery app of bplab's workers: ``celery -A worker.app worker`` or ``bplab worker``.

Configured from the shared settings (BPLAB_BROKER_URL, BPLAB_DATABASE_URL); the configuration is
checked here, at import, so a worker with unsafe time limits never starts.
"""

from __future__ import annotations

import os

from service.celery_config import BLAS_THREAD_VARIABLES

# One BLAS thread per process (see BLAS_THREAD_VARIABLES): set before numpy is first imported, which
# the tasks' imports below do; `bplab worker` also puts these in the environment it execs.
for _name in BLAS_THREAD_VARIABLES:
    os.environ.setdefault(_name, "1")

from celery import Celery  # noqa: E402

from service.config import get_settings  # noqa: E402
from worker.config import worker_config  # noqa: E402

app = Celery("bplab")
app.conf.update(worker_config(get_settings()))


# No worker_process_init hook is needed for the database: service.db.session keys its engines by
# (url, pid) and drops inherited ones, unclosed, in every forked child (os.register_at_fork, which
# billiard's os.fork-based pool triggers); each pool process so opens its own connection pool.

# The tasks are registered here, from worker.tasks' plain functions, so that
# `from worker.app import app` alone registers them (tests, flower) and worker.tasks never
# imports this module back.
# The periodic reconciler (expired leases, lost messages) runs in every worker's main process.
from celery.signals import worker_ready, worker_shutdown  # noqa: E402

from worker import reconciler, tasks  # noqa: E402

for _task_name, _function in tasks.TASKS.items():
    app.task(name=_task_name)(_function)

worker_ready.connect(reconciler.start, weak=False)
worker_shutdown.connect(reconciler.stop, weak=False)
