"""`bplab sweep ...`: plan, run, list, show and resume sweeps."""

from __future__ import annotations

import click
import yaml

from service.commands.common import load_spec_or_exit, run_locally
from service.commands.outcome import refuse_live_resume, warn_oversubscribed
from service.config import Settings, mask_url
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.local import default_workers
from service.output import format_option, render
from service.pruning import budget_line, show_fields
from service.spec import DEFAULT_MAX_RUNS, SweepSpec
from service.spec.estimate import Estimate, crowded, describe, estimate, too_big
from service.sweeps import create_sweep_from_spec, requeue_abandoned

# Expanding a sweep holds every run's configuration in memory (~4 kB each): 2,000,000 runs
# took 8 GB before the first was written. 100,000 runs stay under half a gigabyte.
MAX_RUNS_LIMIT = 100_000

max_runs_option = click.option(
    "--max-runs",
    type=click.IntRange(min=1, max=MAX_RUNS_LIMIT),
    default=DEFAULT_MAX_RUNS,
    show_default=True,
    help="Refuse specs that expand to more runs than this.",
)
workers_option = click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Local worker processes (default: all cores).",
)


def check_cost(spec: SweepSpec, workers: int, *, warn: bool = False) -> Estimate | None:
    """Refuse a sweep whose largest run cannot fit in this machine's memory; the estimate."""
    cost = estimate(spec)
    if cost is None:
        return None
    problem = too_big(cost, workers)
    if problem is not None:
        raise BadInput(f"{spec.name}: {problem}")
    warning = crowded(cost, workers) if warn else None
    if warning is not None:
        click.echo(warning, err=True)
    return cost


@click.command()
@click.argument("spec_path", metavar="SPEC")
@max_runs_option
@format_option
def plan(spec_path: str, max_runs: int, fmt: str) -> None:
    """Validate SPEC and print its expansion; writes nothing."""
    spec = load_spec_or_exit(spec_path, max_runs)
    cost = check_cost(spec, default_workers())
    configs = spec.configs()
    rows = [{"config": i + 1, **{p: c[p] for p in spec.swept}} for i, c in enumerate(configs)]
    if fmt == "table":
        click.echo(
            f"{spec.name}: {len(configs)} configs x {len(spec.seeds)} seeds = "
            f"{spec.count_runs()} runs "
            f"on {spec.dataset}; at most {spec.estimate_epochs():,} epochs in all"
        )
        if cost is not None:
            click.echo(describe(cost, default_workers()))
        budget = budget_line(spec)  # early_terminate: worst-case and expected epochs
        if budget is not None:
            click.echo(budget)
    render(rows, fmt, columns=["config", *spec.swept])


@click.command("run")
@click.argument("spec_path", metavar="SPEC")
@workers_option
@max_runs_option
@format_option
@click.pass_context
def run_sweep(
    ctx: click.Context, spec_path: str, workers: int | None, max_runs: int, fmt: str
) -> None:
    """Validate SPEC, record its runs, train them in a local process pool, print the results.

    With BPLAB_BROKER_URL set the runs go to Celery workers instead (`sweep submit`, then
    `sweep watch`): the same command on a laptop and on a cluster.
    """
    settings: Settings = ctx.obj
    if settings.broker_url:
        from service.commands.remote import submit_spec, watch

        if workers is not None:
            click.echo("--workers applies to local runs; the Celery workers train these", err=True)
        sweep_id = submit_spec(settings, spec_path, max_runs, print_id=False)
        ctx.invoke(watch, sweep_id=sweep_id, interval=1.0, timeout=None, fmt=fmt)
        return
    spec = load_spec_or_exit(spec_path, max_runs)
    check_cost(spec, workers or default_workers(), warn=True)
    warn_oversubscribed(workers)
    with session_scope(settings.database_url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="local")
    click.echo(f"sweep {sweep_id}: {spec.name}", err=True)
    run_locally(settings, sweep_id, workers, fmt)


@click.command()
@click.argument("sweep_id", type=int)
@workers_option
@click.option("--force", is_flag=True, help="Also take back runs whose process may still be alive.")
@format_option
@click.pass_obj
def resume(settings: Settings, sweep_id: int, workers: int | None, force: bool, fmt: str) -> None:
    """Finish the queued (and abandoned) runs of an interrupted sweep."""
    from service.commands.manage import refuse_changed_data

    _get_sweep_or_exit(settings, sweep_id)
    refuse_changed_data(settings, sweep_id, "resume")  # its data file changed: issue 19
    refuse_live_resume(settings, sweep_id, force)
    warn_oversubscribed(workers)
    taken_back = requeue_abandoned(sweep_id, url=settings.database_url, force=force)
    if taken_back:
        click.echo(f"re-queued {taken_back} abandoned run(s)", err=True)
    run_locally(settings, sweep_id, workers, fmt)


@click.command("list")
@click.option("--name", default=None, help="Only sweeps whose name contains this text.")
@click.option("--dataset", default=None, help="Only sweeps whose dataset contains this text.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Only sweeps tagged so.")
@format_option
@click.pass_obj
def list_sweeps(
    settings: Settings, name: str | None, dataset: str | None, tags: tuple[str, ...], fmt: str
) -> None:
    """One line per sweep with its counts by status (filtered by name, dataset and tags)."""
    from service.commands.manage import filter_sweeps, parse_tag_filters
    from service.db.session import sqlite_file

    wanted = parse_tag_filters(tags)
    path = sqlite_file(settings.database_url)
    rows = []
    if path is None or path.exists():  # a reader never creates the file: no file, no sweeps
        with session_scope(settings.database_url, readonly=True) as session:
            rows = filter_sweeps(session, name, dataset, wanted, compact=fmt == "table")
    filtered = name or dataset or tags
    if not rows and fmt == "table" and filtered and (path is None or path.exists()):
        click.echo("no sweep matches these filters")
        return
    if not rows and fmt == "table":
        where = path or mask_url(settings.database_url)
        click.echo(f"no sweeps in {where} yet; `bplab sweep run SPEC` records one")
        return
    # A narrow terminal keeps the counts that say something: statuses no sweep has go first.
    idle = [c for c in repo.RUN_STATUSES if rows and not any(r.get(c) for r in rows)]
    render(rows, fmt, drop=[*idle, "backend", "method", "created_at", "dataset"])


@click.command()
@click.argument("sweep_id", type=int)
@format_option
@click.pass_obj
def show(settings: Settings, sweep_id: int, fmt: str) -> None:
    """A sweep's spec, counts by status and timing."""
    sweep_row = _get_sweep_or_exit(settings, sweep_id)
    with session_scope(settings.database_url, readonly=True) as session:
        counts = repo.status_counts(session, sweep_id)
        pruning = show_fields(session, sweep_id, sweep_row.spec)
        timing = repo.sweep_timing(session, sweep_id)
    info = {
        "id": sweep_row.id,
        "name": sweep_row.name,
        "dataset": sweep_row.dataset,
        "method": sweep_row.method,
        "backend": sweep_row.backend,
        "runs": sweep_row.n_runs,
        "swept": list(sweep_row.swept),
        "created_at": sweep_row.created_at.isoformat(),
        **{f"runs_{k}": v for k, v in counts.items()},
        **timing,
        **pruning,
    }
    from service.commands.manage import sweep_labels  # note, tags, data hash (issue 19)

    info.update(sweep_labels(settings, sweep_id))
    if fmt == "table":
        render([{"field": k, "value": v} for k, v in info.items()], "table")
        click.echo(yaml.safe_dump(sweep_row.spec, sort_keys=False))
    else:
        render([{**info, "spec": sweep_row.spec}], fmt)


def _get_sweep_or_exit(settings: Settings, sweep_id: int):  # noqa: ANN202 - an ORM row
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        session.expunge(row)
    return row
