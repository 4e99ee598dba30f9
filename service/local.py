"""Run a sweep's queued runs in a local process pool: the no-server path."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

# Parallelism comes from processes; a BLAS pool per process would only fight over the same cores.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_stop_event = None  # set in each pool process by _init_process
_url: str | None = None


@dataclass
class PoolReport:
    """What happened to the runs handed to the pool."""

    statuses: dict[int, str | None] = field(default_factory=dict)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for s in self.statuses.values() if s == status)


def default_workers() -> int:
    return os.cpu_count() or 1


def run_in_pool(
    run_ids: Sequence[int],
    *,
    workers: int,
    url: str | None = None,
    on_done: Callable[[int, str | None], None] | None = None,
) -> PoolReport:
    """Train ``run_ids`` in ``workers`` processes; Ctrl-C stops cleanly.

    On Ctrl-C no further run starts, the runs in progress stop within an epoch and go back to
    ``queued`` (keeping their checkpoints), and finished runs are kept.
    """
    report = PoolReport()
    if not run_ids:
        return report
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")
    # spawn, not fork: the children import numpy afresh with one BLAS thread and share no
    # database connections or locks with the parent.
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    processes = min(workers, len(run_ids))
    from service.db.session import get_engine

    # The schema is checked (a SQLite file created or upgraded) here, once, not in every child;
    # if that fails, each child meets the error again and reports it per run, as before.
    schema_checked = False
    with contextlib.suppress(Exception):
        get_engine(url)
        schema_checked = True
    with ProcessPoolExecutor(
        max_workers=processes,
        mp_context=ctx,
        initializer=_init_process,
        initargs=(stop, url, schema_checked),
    ) as pool:
        # Start the processes now: each needs about half a second to import numpy and
        # SQLAlchemy and open the database, which overlaps with the grouping below instead of
        # following it (the pool would start them only as work is submitted).
        for _ in range(processes):
            pool.submit(_ready)
        # Same-shape runs go to a process together and train as one population (issue 8),
        # in as many groups as keep every process busy to the end, longest first.
        from service.db.session import session_scope
        from service.grouping import group_run_ids

        with session_scope(url, readonly=True) as session:
            groups = group_run_ids(session, run_ids, workers=processes)
        futures: dict[Future[dict[int, str | None]], list[int]] = {
            pool.submit(_run_group, group): group for group in groups
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    _collect(fut, futures[fut], report, on_done)
        except KeyboardInterrupt:
            report.interrupted = True
            stop.set()
            for fut in pending:
                fut.cancel()
            for fut in pending:
                if not fut.cancelled():
                    _collect(fut, futures[fut], report, on_done, wait_for_it=True)
    return report


def _collect(
    fut: Future[dict[int, str | None]],
    run_ids: list[int],
    report: PoolReport,
    on_done: Callable[[int, str | None], None] | None,
    *,
    wait_for_it: bool = False,
) -> None:
    try:
        statuses = fut.result() if wait_for_it or fut.done() else {}
    except Exception as exc:  # the pool process died (killed, out of memory): the runs stay claimed
        statuses = dict.fromkeys(run_ids, f"lost: {exc}")
    for run_id in run_ids:
        status = statuses.get(run_id)
        report.statuses[run_id] = status
        if on_done is not None:
            on_done(run_id, status)


def _init_process(stop_event: object, url: str | None, schema_checked: bool = False) -> None:
    global _stop_event, _url
    # Ctrl-C goes to the whole process group; the parent decides, the children stop via the event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_event = stop_event
    _url = url
    # What every group needs, loaded while the parent is still preparing the work: the
    # modules, and the database engine (its first use checks the schema, unless the parent
    # has just done so).
    from service.db.session import adopt_checked_engine, get_engine
    from service.execution import execute_runs  # noqa: F401

    # a database error here is met again by the first group, which reports it per run
    with contextlib.suppress(Exception):
        adopt_checked_engine(url) if schema_checked else get_engine(url)
    atexit.register(_exit_quickly)


def _exit_quickly() -> None:
    """The last thing a pool process does (it ends when the pool shuts down, after its last
    result was sent and every write committed): skip Python's teardown of NumPy, SQLAlchemy
    and the rest, which took 0.18 s that the parent spent waiting for it to end."""
    from service.db.session import dispose_engines

    dispose_engines()  # close the database connections properly
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _ready() -> None:
    """Submitted once per process to start them all at once; the initializer does the work."""


def _run_group(run_ids: list[int]) -> dict[int, str | None]:
    from service.execution import execute_runs

    return execute_runs(run_ids, url=_url, should_stop=_stop_event.is_set)  # type: ignore[attr-defined]
