"""What several commands share: loading a spec as bad input, training a sweep's queued runs
locally, printing a sweep's results table. Its own module, so that the commands that use
these import it and not one another (no cycles among the commands: an import-linter
contract)."""

from __future__ import annotations

from service.commands.outcome import finish
from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.local import LocalPool, PoolReport, default_workers
from service.output import render
from service.progress import epoch_poll, sweep_progress
from service.records import run_record
from service.results import DISPLAY_DROP, SUMMARY_COLUMNS, display_rows, summarize
from service.spec import SpecError, SweepSpec, load_spec


def load_spec_or_exit(path: str, max_runs: int) -> SweepSpec:
    try:
        return load_spec(path, max_runs=max_runs)
    except SpecError as exc:
        raise BadInput(str(exc)) from None


def run_locally(settings: Settings, sweep_id: int, workers: int | None, fmt: str) -> None:
    url = settings.database_url
    with session_scope(url, readonly=True) as session:
        queued = repo.run_ids(session, sweep_id, status="queued")
    report = PoolReport()
    if queued:
        # the pool first: its processes can be forked only while no progress thread runs
        with (
            LocalPool(min(workers or default_workers(), len(queued)), url) as pool,
            sweep_progress(len(queued), poll=epoch_poll(url, sweep_id)) as bar,
        ):
            report = pool.run(queued, on_done=lambda _rid, status: bar.advance(status))
    print_results(settings, sweep_id, fmt)
    left = report.count("queued") + sum(1 for s in report.statuses.values() if s is None)
    finish(settings, sweep_id, interrupted=report.interrupted, left=left)


def print_results(settings: Settings, sweep_id: int, fmt: str, by: list[str] | None = None) -> None:
    from service.commands.results import with_val_accuracy

    with session_scope(settings.database_url, readonly=True) as session:
        sweep_row = repo.get_sweep(session, sweep_id)
        if sweep_row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        group_by = by if by is not None else list(sweep_row.swept)
        title = f"sweep {sweep_id}: {sweep_row.name}"
        runs = [run_record(r) for r in repo.list_runs(session, sweep_id)]
        with_val_accuracy(session, sweep_id, runs)
    rows = summarize(runs, group_by)
    if fmt == "table":
        shown, columns = display_rows(rows, group_by)
        render(shown, fmt, columns=columns, title=title, drop=DISPLAY_DROP)
    else:
        # Every row names its sweep: a script that ran `sweep run --format json` needs the id
        # to ask for anything more, and stderr's "sweep N:" line is no place to parse it from.
        rows = [{"sweep_id": sweep_id, **row} for row in rows]
        render(rows, fmt, columns=["sweep_id", *group_by, *SUMMARY_COLUMNS])
