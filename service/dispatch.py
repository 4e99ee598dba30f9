"""Dispatch: record, then publish. The one place where runs go to Celery workers.

The database is the truth and the broker carries hints ("train runs 17, 18"): a sweep and all
its runs are committed in one transaction before the first message leaves, so a worker never
sees a run that does not exist, and a publish that fails leaves queued runs that the
reconciler or ``bplab sweep republish`` publishes later. Whatever the occasion (a new sweep,
a retry, a republish, the reconciler, a run handed back at its time limit), runs of one shape
travel together as one population task (``service.grouping`` decides the shape), so a retried
run costs what a fresh one does: 72 retried runs published one task each took 98.7 s where
the whole 96-run sweep took 18.4 s (issue 24).

Errors are domain errors (``DispatchError``, one line, password masked); the commands turn
them into click errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from service.config import mask_url
from service.db import repository as repo
from service.db.session import session_scope
from service.grouping import SUBMIT_MIN_TASKS, group_run_ids
from service.producer import (
    BrokerUnavailable,
    check_broker,
    publish,
    train_run_messages,
    train_runs_messages,
)

BROKER_CHECK_TIMEOUT_S = 5.0


class DispatchError(Exception):
    """A sweep or its runs could not be recorded or published: one line for the user."""


@dataclass(frozen=True)
class Submitted:
    """A sweep recorded and published: its id, runs and tasks, and the time of each step."""

    sweep_id: int
    runs: int
    tasks: int
    write_s: float
    publish_s: float


def publish_groups(
    groups: Sequence[Sequence[int]], broker_url: str, *, queue: str | None = None
) -> int:
    """Publish one task per group (``bplab.train_runs``; a group of one as ``bplab.train_run``,
    the plain path); returns the number of runs published. BrokerUnavailable on failure."""
    singles = [g[0] for g in groups if len(g) == 1]
    multi = [list(g) for g in groups if len(g) > 1]
    publish(chain(train_run_messages(singles), train_runs_messages(multi)), broker_url, queue=queue)
    return sum(len(g) for g in groups)


def submit_spec(spec: Any, database_url: str, broker_url: str) -> Submitted:
    """Record ``spec``'s sweep and runs in one transaction, then publish them.

    Nothing is written when the broker cannot be reached or the database refuses the sweep
    (DispatchError); when the publish fails after the commit, the sweep exists with queued
    runs and the error says how to publish them again.
    """
    from service.sweeps import create_sweep_from_spec

    def record(session: Any) -> tuple[int, Sequence[int]]:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
        return sweep_id, repo.run_ids(session, sweep_id)

    return _record_then_publish(database_url, broker_url, record)


def submit_runs(
    database_url: str,
    broker_url: str,
    sweep_id: int,
    record: Callable[[Any], Sequence[int]],
) -> Submitted:
    """More runs of an existing sweep (``sweep extend``): ``record(session)`` writes them and
    returns their ids in one transaction, then they are published grouped by shape, as
    submit_spec does for a new sweep. Errors as there."""
    return _record_then_publish(
        database_url, broker_url, lambda session: (sweep_id, record(session))
    )


def _record_then_publish(
    database_url: str,
    broker_url: str,
    record: Callable[[Any], tuple[int, Sequence[int]]],
) -> Submitted:
    """``record(session)`` -> (sweep id, new run ids) in one transaction, then the runs published,
    same-shape runs together as one population task each (issue 8)."""
    try:
        check_broker(broker_url, timeout=BROKER_CHECK_TIMEOUT_S)
    except BrokerUnavailable as exc:
        raise DispatchError(f"{exc}; nothing was written") from None
    started = time.perf_counter()
    try:
        with session_scope(database_url) as session:
            sweep_id, run_ids = record(session)
            groups = group_run_ids(session, list(run_ids), min_groups=SUBMIT_MIN_TASKS)
    except Exception as exc:  # not migrated, unreachable, ...: rolled back, nothing published
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DispatchError(
            f"cannot record the runs in {mask_url(database_url)}: {first}; "
            "nothing was written or published"
        ) from None
    written = time.perf_counter()
    try:
        sent = publish_groups(groups, broker_url)
    except BrokerUnavailable as exc:
        raise DispatchError(
            f"sweep {sweep_id} is recorded with {len(run_ids)} new queued run(s), but {exc}. "
            f"The runs stay queued; publish them again with `bplab sweep republish {sweep_id}`."
        ) from None
    return Submitted(sweep_id, sent, len(groups), written - started, time.perf_counter() - written)


def publish_stored(
    database_url: str | None,
    run_ids: Sequence[int],
    broker_url: str,
    *,
    queue: str | None = None,
    sweep_id: int | None = None,
    min_groups: int = SUBMIT_MIN_TASKS,
    alone: bool = False,
) -> int:
    """Publish runs already recorded as queued (a retry, a reconciler's pass), grouped by
    shape; the runs sent. ``database_url`` None: the configured database. ``min_groups``: at
    least that many tasks per shape when it has that many runs, to spread a retry over the
    workers as a new sweep is; 1 keeps the runs of one shape together, as the runs of one
    task that were handed back or lost together came. ``alone``: one task per run, for runs
    whose process died while it trained them: one of them may be what killed it (a poison
    run), and in a population it would take the others down with it on every attempt."""
    if alone:
        groups = [[int(r)] for r in run_ids]
    else:
        with session_scope(database_url, readonly=True) as session:
            groups = group_run_ids(session, run_ids, min_groups=min_groups)
    try:
        return publish_groups(groups, broker_url, queue=queue)
    except BrokerUnavailable as exc:
        later = f"`bplab sweep republish {sweep_id}`" if sweep_id else "`bplab sweep republish`"
        raise DispatchError(
            f"{exc}; the runs stay queued (the workers' reconciler or {later} publishes them)"
        ) from None


def republish_sweep(
    database_url: str, sweep_id: int, broker_url: str, *, queue: str | None = None
) -> int:
    """Publish again every run of the sweep still ``queued`` (after a failed or lost publish),
    grouped by shape. Safe to repeat: a run published twice is trained once (the claim)."""
    with session_scope(database_url, readonly=True) as session:
        run_ids = repo.run_ids(session, sweep_id, status="queued")
    return publish_stored(database_url, run_ids, broker_url, queue=queue, sweep_id=sweep_id)


__all__ = [
    "DispatchError",
    "Submitted",
    "publish_groups",
    "publish_stored",
    "republish_sweep",
    "submit_runs",
    "submit_spec",
]
