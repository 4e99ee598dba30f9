"""Run a sweep's queued runs in a local process pool: the no-server path."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the bplab program imports this module at start
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.context import BaseContext

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


def pool_context() -> BaseContext:
    """How the pool's processes start: forked where that is safe, else spawned.

    A forked process starts with everything the parent has imported (NumPy, SQLAlchemy, the
    models, the engine): a spawned one spent most of a second of CPU importing them again,
    more than half of what a short sweep cost (issue 22). Forking copies the whole parent,
    so it is done only where that parent is known: the bplab program (service.program), which has
    opened no broker connection (kombu closes those at a fork: a forked child of a test
    process that had used Celery hung there), on Linux (macOS's frameworks are not
    fork-safe), while it runs no other thread (a lock another thread holds at the fork would
    stay locked in the child; so the pool starts before the progress bar). A notebook or a
    program embedding bplab gets spawned processes.
    """
    import multiprocessing

    from service import program

    if program.owns_process() and sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class LocalPool:
    """``processes`` processes, all started on entering; ``run`` trains runs in them.

    Enter it before starting any thread (a progress bar), so that they can be forked.
    """

    def __init__(self, processes: int, url: str | None = None) -> None:
        self.processes = max(1, processes)
        self.url = url
        self.ctx = pool_context()
        self.stop = self.ctx.Event()
        self.executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        for var in BLAS_THREAD_VARS:
            os.environ.setdefault(var, "1")
        from service.db.session import dispose_engines, get_engine

        # The schema is checked (a SQLite file created or upgraded) here, once, not in every
        # child; if that fails, each child meets the error again and reports it per run.
        schema_checked = False
        with contextlib.suppress(Exception):
            get_engine(self.url)
            schema_checked = True
        if self.ctx.get_start_method() == "fork":
            # no open connection crosses the fork: the children open their own
            dispose_engines()
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=self.ctx,
            initializer=_init_process,
            initargs=(self.stop, self.url, schema_checked),
        )
        # Start every process now (forked at once, or spawned in parallel with the parent's
        # own preparation) rather than as work is submitted.
        for _ in range(self.processes):
            self.executor.submit(_ready)

    def close(self) -> None:
        """Wait for the submitted work, then end the processes."""
        assert self.executor is not None
        self.executor.shutdown(wait=True)

    def submit(self, run_ids: Sequence[int]) -> Future[dict[int, str | None]]:
        """Train ``run_ids`` in one process (as one population where they share a shape)."""
        assert self.executor is not None, "start the pool first"
        return self.executor.submit(_run_group, list(run_ids))

    def run(
        self,
        run_ids: Sequence[int],
        on_done: Callable[[int, str | None], None] | None = None,
    ) -> PoolReport:
        """Train ``run_ids``; Ctrl-C stops cleanly.

        On Ctrl-C no further run starts, the runs in progress stop within an epoch and go back
        to ``queued`` (keeping their checkpoints), and finished runs are kept.
        """
        from concurrent.futures import FIRST_COMPLETED, wait

        report = PoolReport()
        if not run_ids:
            return report
        # Same-shape runs go to a process together and train as one population (issue 8),
        # in as many groups as keep every process busy to the end, longest first.
        from service.db.session import session_scope
        from service.grouping import group_run_ids

        with session_scope(self.url, readonly=True) as session:
            groups = group_run_ids(session, run_ids, workers=self.processes)
        futures: dict[Future[dict[int, str | None]], list[int]] = {
            self.submit(group): group for group in groups
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    _collect(fut, futures[fut], report, on_done)
        except KeyboardInterrupt:
            report.interrupted = True
            self.stop.set()
            for fut in pending:
                fut.cancel()
            for fut in pending:
                if not fut.cancelled():
                    _collect(fut, futures[fut], report, on_done, wait_for_it=True)
        return report


def run_in_pool(
    run_ids: Sequence[int],
    *,
    workers: int,
    url: str | None = None,
    on_done: Callable[[int, str | None], None] | None = None,
) -> PoolReport:
    """Train ``run_ids`` in ``workers`` processes (fewer if there are fewer runs)."""
    if not run_ids:
        return PoolReport()
    with LocalPool(min(workers, len(run_ids)), url) as pool:
        return pool.run(run_ids, on_done)


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
    if "numpy" in sys.modules:
        # Forked from a parent that loaded NumPy before BLAS_THREAD_VARS were set: its BLAS
        # would run a thread per core in each of these processes, fighting over the cores.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    # What every group needs, loaded while the parent is still preparing the work: the
    # modules, and the database engine (its first use checks the schema, unless the parent
    # has just done so).
    from service.db.session import adopt_checked_engine, dispose_engines, get_engine
    from service.execution import execute_runs  # noqa: F401

    # a database error here is met again by the first group, which reports it per run
    with contextlib.suppress(Exception):
        adopt_checked_engine(url) if schema_checked else get_engine(url)
    # Close the database connections properly when the process ends: multiprocessing runs
    # its finalizers in forked and spawned processes alike (a forked one skips atexit).
    from multiprocessing.util import Finalize

    Finalize(None, dispose_engines, exitpriority=0)
    atexit.register(_exit_quickly)


def _exit_quickly() -> None:
    """The last thing a spawned pool process does (it ends when the pool shuts down, after
    its last result was sent and every write committed): skip Python's teardown of NumPy,
    SQLAlchemy and the rest, which took 0.18 s that the parent spent waiting for it to end.
    (A forked process ends with os._exit already.)"""
    from service.program import exit_now

    exit_now(0)


def _ready() -> None:
    """Submitted once per process to start them all at once; the initializer does the work."""


def _run_group(run_ids: list[int]) -> dict[int, str | None]:
    from service.execution import execute_runs

    return execute_runs(run_ids, url=_url, should_stop=_stop_event.is_set)  # type: ignore[attr-defined]
