"""The CLI of model-based search (method tpe | gp | cmaes).

`bplab sweep drive ID` is this module's own command. For the commands that already exist
(`sweep plan | run | resume | submit | watch`, `results`) an adaptive sweep takes its own
path here and every other sweep goes on exactly as before: ``route`` wraps their
callbacks when service.commands first imports them, so the grid and random code is untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_option, render

# `sweep drive | watch` on Celery: configurations in flight at once, unless --parallel.
DEFAULT_PARALLEL = 4


def _settings() -> Settings:
    return click.get_current_context().obj


def _adaptive_sweep(settings: Settings, sweep_id: int) -> Any | None:
    """The sweep row when SWEEP_ID is a search; None for grid and random sweeps."""
    from service.search.spec import ADAPTIVE_METHODS

    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        session.expunge(row)
    return row if row.method in ADAPTIVE_METHODS else None


def _spec(spec_path: str, max_runs: int):  # noqa: ANN202 - a SweepSpec
    from service.commands.common import load_spec_or_exit

    return load_spec_or_exit(spec_path, max_runs)


# --- driving -----------------------------------------------------------------------


def drive(
    settings: Settings,
    sweep_id: int,
    *,
    workers: int | None = None,
    parallel: int | None = None,
    progress: bool = True,
    first_batch_only: bool = False,
) -> Any:
    """Drive the search of SWEEP_ID on its backend; the DriveReport."""
    from service.search.backends import CeleryBackend, LocalBackend
    from service.search.driver import Driver

    sweep = _adaptive_sweep(settings, sweep_id)
    if sweep is None:
        raise BadInput(f"sweep {sweep_id} is not a search (method tpe, gp or cmaes)")
    if sweep.backend == "celery":
        if not settings.broker_url:
            raise BadInput(
                f"sweep {sweep_id} trains on Celery workers: set BPLAB_BROKER_URL to drive it"
            )
        backend: Any = CeleryBackend(
            parallel or DEFAULT_PARALLEL, settings.database_url, settings.broker_url, sweep_id
        )
    else:
        from service.local import default_workers

        backend = LocalBackend(workers or parallel or default_workers(), settings.database_url)
    driver = Driver(sweep_id, backend, url=settings.database_url, first_batch_only=first_batch_only)
    total = int(sweep.spec["run_cap"]) * len(sweep.spec["seeds"])
    if not progress:
        return driver.run()
    from service.progress import sweep_progress

    with sweep_progress(total, description="search") as bar:
        driver.on_tick = functools.partial(_show, settings, sweep_id, bar)
        report = driver.run()
        _show(settings, sweep_id, bar)
        return report


def _show(settings: Settings, sweep_id: int, bar: Any) -> None:
    with session_scope(settings.database_url, readonly=True) as session:
        counts = repo.status_counts(session, sweep_id)
    done = sum(n for s, n in counts.items() if s not in ("queued", "running"))
    bar.set(
        done=done,
        failed=counts.get("failed", 0) + counts.get("cancelled", 0),
        description=f"search ({counts.get('running', 0)} running)",
    )


def _finish(settings: Settings, report: Any, fmt: str) -> None:
    """Print the trials; say how to go on when the driver did not finish."""
    print_trials(settings, report.sweep_id, fmt)
    sid = report.sweep_id
    if report.interrupted:
        raise click.ClickException(
            f"interrupted: finished runs are kept; continue with `bplab sweep resume {sid}` "
            "(local) or `bplab sweep drive " + str(sid) + "` (Celery)"
        )
    if report.lost_lease:
        raise click.ClickException(f"sweep {sid}: another driver took the search over")
    if not report.finished and report.held_by:
        raise click.ClickException(f"sweep {sid} is driven by {report.held_by}")


def print_trials(settings: Settings, sweep_id: int, fmt: str) -> None:
    """The trials in the order tried, with the best so far."""
    from service.search.history import display, json_rows, sweep_metric, trial_rows

    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        spec, swept, name = dict(row.spec), list(row.swept), row.name
        rows = trial_rows(session, sweep_id, spec)
    metric = sweep_metric(spec)
    if fmt != "table":
        render(json_rows(rows, swept), fmt)
        return
    shown, columns = display(rows, swept, metric)
    title = f"sweep {sweep_id}: {name} ({spec['method']}, {len(rows)}/{spec['run_cap']} tried)"
    render(shown, fmt, columns=columns, title=title)


@click.command("drive")
@click.argument("sweep_id", type=int)
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Local processes.")
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=None,
    help=f"Configurations in flight at once on Celery [default: {DEFAULT_PARALLEL}].",
)
@format_option
@click.pass_obj
def drive_command(
    settings: Settings, sweep_id: int, workers: int | None, parallel: int | None, fmt: str
) -> None:
    """Drive the search of SWEEP_ID to its run_cap, without a progress bar; one driver per
    sweep at a time (another waits, and takes over when this one stops)."""
    report = drive(settings, sweep_id, workers=workers, parallel=parallel, progress=False)
    _finish(settings, report, fmt)


# --- the existing commands, for adaptive sweeps --------------------------------------


def _plan(spec_path: str, max_runs: int, fmt: str, **_: Any) -> bool:
    spec = _spec(spec_path, max_runs)
    if not spec.adaptive:
        return False
    from service.search.space import search_space

    space = search_space(spec)
    metric = spec.spec_dict["metric"]
    rows = [{"parameter": k, "search": repr(d)} for k, d in space.items()]
    if fmt == "table":
        click.echo(
            f"{spec.name}: {spec.method} search on {spec.dataset}, up to {spec.run_cap} "
            f"configurations x {len(spec.seeds)} seeds = {spec.count_runs()} runs, at most "
            f"{spec.estimate_epochs():,} epochs; {metric['goal']} the {metric['aggregate']} "
            f"{metric['name']} over seeds; sampler_seed {spec.spec_dict['sampler_seed']}"
        )
    render(rows, fmt, columns=["parameter", "search"])
    return True


def _run(spec_path: str, workers: int | None, max_runs: int, fmt: str, **_: Any) -> bool:
    spec = _spec(spec_path, max_runs)
    if not spec.adaptive:
        return False
    settings = _settings()
    if settings.broker_url:
        sweep_id = _submit_adaptive(settings, spec)
        _finish(settings, drive(settings, sweep_id), fmt)
        return True
    from service.sweeps import create_sweep_from_spec

    with session_scope(settings.database_url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="local")
    click.echo(f"sweep {sweep_id}: {spec.name}", err=True)
    _finish(settings, drive(settings, sweep_id, workers=workers), fmt)
    return True


def _resume(sweep_id: int, workers: int | None, force: bool, fmt: str, **_: Any) -> bool:
    settings = _settings()
    if _adaptive_sweep(settings, sweep_id) is None:
        return False
    from service.sweeps import requeue_abandoned

    taken_back = requeue_abandoned(sweep_id, url=settings.database_url, force=force)
    if taken_back:
        click.echo(f"re-queued {taken_back} abandoned run(s)", err=True)
    _finish(settings, drive(settings, sweep_id, workers=workers), fmt)
    return True


def _submit_adaptive(settings: Settings, spec: Any) -> int:
    """Record the search (no runs yet) and start it: its first configurations, published."""
    from service.commands.remote import _check_broker_url, _refuse_sqlite, _require_broker
    from service.sweeps import create_sweep_from_spec

    broker_url = _require_broker(settings)
    _refuse_sqlite(settings)
    _check_broker_url(broker_url)
    with session_scope(settings.database_url) as session:
        sweep_id = create_sweep_from_spec(session, spec, backend="celery")
    report = drive(settings, sweep_id, progress=False, first_batch_only=True)
    click.echo(
        f"sweep {sweep_id}: {spec.name}: {spec.method} search started, {report.asked} "
        f"configuration(s) queued; drive it with `bplab sweep watch {sweep_id}` or "
        f"`bplab sweep drive {sweep_id}`",
        err=True,
    )
    return sweep_id


def _submit(spec_path: str, max_runs: int, **_: Any) -> bool:
    spec = _spec(spec_path, max_runs)
    if not spec.adaptive:
        return False
    click.echo(_submit_adaptive(_settings(), spec))
    return True


def _watch(sweep_id: int, fmt: str, **_: Any) -> bool:
    settings = _settings()
    if _adaptive_sweep(settings, sweep_id) is None:
        return False
    _finish(settings, drive(settings, sweep_id), fmt)
    return True


def _results(sweep_id: int, by: str | None, sort: str | None, fmt: str, **_: Any) -> bool:
    settings = _settings()
    if by is not None or sort is not None or _adaptive_sweep(settings, sweep_id) is None:
        return False  # --by and --sort: the per-configuration table, as for any sweep
    print_trials(settings, sweep_id, fmt)
    return True


# The existing commands whose adaptive sweeps this module takes, by their path under `bplab`;
# service.commands names the same paths (LazyCommand.adaptive_route) and calls ``route`` when
# it first imports one of those commands.
ADAPTIVE_ROUTES: dict[str, Callable[..., bool]] = {
    "sweep plan": _plan,
    "sweep run": _run,
    "sweep resume": _resume,
    "sweep submit": _submit,
    "sweep watch": _watch,
    "results": _results,
}


def route(path: str, command: click.Command) -> None:
    """Let the search handle ``bplab PATH`` first; when it declines, the original runs."""
    original = command.callback
    assert original is not None
    if getattr(original, "adaptive_route", None) == path:
        return  # routed already: a command is imported once, but a second CLI may load it
    adaptive = ADAPTIVE_ROUTES[path]

    @functools.wraps(original)
    def callback(*args: Any, **kwargs: Any) -> Any:
        if adaptive(**kwargs):
            return None
        return original(*args, **kwargs)

    callback.adaptive_route = path  # type: ignore[attr-defined]
    command.callback = callback
