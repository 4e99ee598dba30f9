"""`bplab plot`: a sweep's curves (the mean over seeds per configuration, with a band) or one
run's, to a PNG, SVG or PDF file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from service.commands.results import load_sweep, parse_by
from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_cell, output_path, writing_to
from service.records import run_record
from service.results import PENDING, param_value

# --- plot ----------------------------------------------------------------------------


@click.command("plot")
@click.argument("target_id", metavar="ID", type=int)
@click.option("-o", "--output", required=True, help="PNG/SVG/PDF file.")
@click.option("--run", "is_run", is_flag=True, help="ID is a run: plot that run's curves.")
@click.option(
    "--by", default=None, help="Parameters that make a line, comma-separated [default: swept]."
)
@click.option(
    "--log/--linear", "log", default=None, help="y axis [default: log, linear for accuracy]."
)
@click.option("--band", type=click.Choice(("sd", "minmax")), default="sd", show_default=True)
@click.option(
    "--metric",
    type=click.Choice(("loss", "val_loss", "accuracy")),
    default="loss",
    show_default=True,
)
@click.option(
    "--diverged",
    "with_diverged",
    is_flag=True,
    help="Also plot configurations with diverged runs [default: listed under the plot].",
)
@click.option(
    "--kind",
    type=click.Choice(("curves", "history", "params", "kernels")),
    default="curves",
    show_default=True,
    help="curves per configuration; history: the metric and best so far against "
    "configurations tried; params: each parameter against the metric (random and "
    "model-based sweeps); kernels: with --run, a tied net's kernels as Hinton diagrams.",
)
@click.pass_obj
def plot(
    settings: Settings,
    target_id: int,
    output: str,
    is_run: bool,
    by: str | None,
    log: bool | None,
    band: str,
    metric: str,
    with_diverged: bool,
    kind: str,
) -> None:
    """Curves of sweep ID: per configuration, the mean over seeds with a shaded band.

    Configurations with a diverged run are left out (their losses run to infinity and
    flatten every other curve) and named under the plot; --diverged draws them too. A sweep
    with runs still queued or running is marked partial. With --run, ID is a run id and the
    plot shows that run's curve (and its validation loss when recorded). --kind history and
    --kind params plot the sweep's metric (a search's, else the mean final loss) per
    configuration instead of curves. --run --kind kernels draws a tied net's kernels (the T-C
    problem's receptive fields) as Hinton diagrams.
    """
    from service import plots
    from service.curves import group_bands, load_curves

    if Path(output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise BadInput(f"-o {output!r}: the file must end in .png, .svg or .pdf")
    output_path(output)
    if kind == "kernels":
        _plot_kernels(settings, target_id, output, is_run=is_run, by=by)
        return
    if kind != "curves":
        _plot_search(settings, target_id, output, kind, log, is_run=is_run, by=by)
        return
    use_log = log if log is not None else metric != "accuracy"
    if is_run:
        _plot_run(settings, target_id, output, metric, use_log)
        return
    sweep, runs = load_sweep(settings, target_id)
    group_by = parse_by(by, sweep, runs)
    with session_scope(settings.database_url, readonly=True) as session:
        curves = load_curves(session, sweep_id=target_id, metrics=[metric])
    kept, notes = _plotted_runs(runs, group_by, with_diverged)
    lines = group_bands(kept, curves, group_by, metric, band)
    if not lines:
        raise BadInput(f"sweep {target_id} has no recorded {metric} to plot" + _why(notes))
    title = f"sweep {target_id}: {sweep['name']}"
    pending = sum(1 for r in runs if r["status"] in PENDING)
    if pending:
        title += f" (partial: {len(runs) - pending} of {len(runs)} runs finished)"
    fig = plots.sweep_figure(lines, metric=metric, log=use_log, band=band, title=title, notes=notes)
    with writing_to(output):
        plots.save(fig, output)
    click.echo(f"wrote {output}: {len(lines)} configuration(s)", err=True)
    for note in notes:
        click.echo(note, err=True)


def _plot_search(
    settings: Settings,
    sweep_id: int,
    output: str,
    kind: str,
    log: bool | None,
    *,
    is_run: bool,
    by: str | None,
) -> None:
    from service import plots
    from service.search.plotting import search_figure

    if is_run or by is not None:
        option = "--run" if is_run else "--by"
        raise BadInput(f"{option} is for curves, not --kind {kind}")
    fig, shown = search_figure(settings.database_url, sweep_id, kind, log)
    with writing_to(output):
        plots.save(fig, output)
    click.echo(f"wrote {output}: {shown} configuration(s)", err=True)


def _plot_kernels(
    settings: Settings, run_id: int, output: str, *, is_run: bool, by: str | None
) -> None:
    from service import plots
    from service.inspection import trained_network
    from service.inspection_shared import kernel_grids

    if not is_run or by is not None:
        raise BadInput("--kind kernels draws one run's kernels: give --run and a run id")
    trained = trained_network(settings.database_url, run_id)
    kernels = kernel_grids(trained.net)
    if not kernels:
        raise BadInput(f"run {run_id} has no tied kernels (its spec sets no `kernels`)")
    title = f"run {run_id} (seed {trained.seed}, {trained.status}): {trained.config['dataset']}"
    fig = plots.kernels_figure(kernels, title)
    with writing_to(output):
        plots.save(fig, output)
    click.echo(f"wrote {output}: {len(kernels)} kernel(s)", err=True)


def _plotted_runs(
    runs: list[dict[str, Any]], by: list[str], with_diverged: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs to plot and the notes under the plot: configurations with diverged runs are
    left out unless asked for, and named either way."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(param_value(run["config"], n) for n in by), []).append(run)
    kept, notes = [], []
    for key, members in groups.items():
        diverged = sum(1 for r in members if r["status"] == "diverged")
        label = ", ".join(f"{n}={format_cell(v)}" for n, v in zip(by, key, strict=True))
        if diverged:
            what = "plotted" if with_diverged else "left out"
            notes.append(
                f"{what}: {label or 'all runs'} ({diverged} of {len(members)} runs diverged)"
            )
        if not diverged or with_diverged:
            kept.extend(members)
    if notes and not with_diverged:
        notes.append("(--diverged plots them)")
    pending = sum(1 for r in runs if r["status"] in PENDING)
    if pending:
        notes.append(f"partial: {pending} of {len(runs)} runs still queued or running")
    return kept, notes


def _why(notes: list[str]) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def _plot_run(settings: Settings, run_id: int, output: str, metric: str, log: bool) -> None:
    from service import plots
    from service.curves import load_curves

    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_run(session, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        record = run_record(row)
        sweep_row = repo.get_sweep(session, row.sweep_id)
        swept = list(sweep_row.swept) if sweep_row is not None else []
        curves = load_curves(session, run_ids=[run_id], metrics=["loss", "val_loss", "accuracy"])
    curve = curves.get(run_id)
    metrics = [metric, "val_loss"] if metric == "loss" else [metric]
    if curve is None or not any(_finite(curve[m]) for m in metrics):
        raise BadInput(f"run {run_id} has no recorded {metric} to plot")
    params = ", ".join(f"{k}={param_value(record['params'], k)}" for k in swept) or "one config"
    title = (
        f"run {run_id} (sweep {record['sweep_id']}, seed {record['seed']}): {params};"
        f" {record['status']}"
    )
    fig = plots.run_figure(
        curve, metrics=metrics, log=log, title=title, solved_epoch=record["solved_epoch"]
    )
    with writing_to(output):
        plots.save(fig, output)
    click.echo(f"wrote {output}", err=True)


def _finite(values: Any) -> bool:
    import numpy as np

    return bool(np.isfinite(values).any())
