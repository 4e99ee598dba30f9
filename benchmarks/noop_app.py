"""A Celery app with one task that does nothing but count itself: the bare task rate.

benchmarks/service.py starts `celery -A benchmarks.noop_app worker` with the same settings as
a bplab worker (JSON, late acks, prefetch 1, prefork), so the rate it measures is what Celery
and Redis alone cost per task on this machine; bplab's sweep rate is compared with it.
The count (one Redis INCR per task) is how the benchmark knows when all tasks are done.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

from service.celery_config import worker_celery_config

NOOP = "bench.noop"

app = Celery("bplab-bench-noop")
app.conf.update(worker_celery_config(os.environ["BPLAB_BROKER_URL"]))

_counter: redis.Redis | None = None


@app.task(name=NOOP)
def noop(*, key: str) -> None:
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(os.environ["BPLAB_BROKER_URL"])
    _counter.incr(key)
