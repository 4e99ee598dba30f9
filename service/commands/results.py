"""`bplab results`, `compare`, `plot`, `export` and `sql`: reading a sweep's outcome back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_option, output_path, render, writing_to
from service.records import public_run, run_record
from service.results import SUMMARY_COLUMNS, display_rows, param_value, summarize


def load_sweep(settings: Settings, sweep_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sweep as a plain dict and its runs as records; NotFound if there is no such sweep."""
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        sweep = {
            "id": row.id,
            "name": row.name,
            "dataset": row.dataset,
            "method": row.method,
            "swept": list(row.swept),
            "n_runs": row.n_runs,
            "backend": row.backend,
            "created_at": row.created_at.isoformat(),
            "spec": row.spec,
        }
        runs = [run_record(r) for r in repo.list_runs(session, sweep_id)]
    return sweep, runs


def config_keys(runs: list[dict[str, Any]]) -> list[str]:
    return sorted({k for r in runs for k in r["config"]})


def parse_by(by: str | None, sweep: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """--by as a list of configuration keys (default: the swept ones); BadInput if unknown."""
    if by is None:
        return list(sweep["swept"])
    names = [n.strip() for n in by.split(",") if n.strip()]
    allowed = config_keys(runs)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise BadInput(f"--by: unknown parameter {bad[0]!r}; allowed: {', '.join(allowed)}")
    return names


# --- results -------------------------------------------------------------------------


@click.command("results")
@click.argument("sweep_id", type=int)
@click.option(
    "--by", default=None, help="Parameters to group by, comma-separated [default: swept]."
)
@click.option(
    "--sort",
    default=None,
    help="A column to sort by, - prefix for descending [default: best first].",
)
@format_option
@click.pass_obj
def results(settings: Settings, sweep_id: int, by: str | None, sort: str | None, fmt: str) -> None:
    """One row per configuration of SWEEP_ID, best first, with statistics over its seeds.

    Best first: highest success rate (runs that reached stop_within, out of the finished
    ones), then fewest epochs to solve (median), then lowest mean final loss. Runs still
    queued or running are counted as pending. Table: compact; json/csv: every column.
    """
    sweep, runs = load_sweep(settings, sweep_id)
    group_by = parse_by(by, sweep, runs)
    columns = [*group_by, *SUMMARY_COLUMNS]
    if sort is not None and sort.lstrip("-") not in columns:
        raise BadInput(f"--sort: unknown column {sort!r}; allowed: {', '.join(columns)}")
    rows = summarize(runs, group_by, sort=sort)
    if fmt != "table":
        render(rows, fmt, columns=columns)
        return
    pending = sum(r["pending"] for r in rows)
    title = f"sweep {sweep_id}: {sweep['name']} ({len(runs)} runs"
    title += f", {pending} pending)" if pending else ")"
    shown, shown_columns = display_rows(rows, group_by)
    render(shown, fmt, columns=shown_columns, title=title)
    click.echo(
        "solved: share of finished runs that reached stop_within; epochs to solve: median"
        " [quartiles] over the runs that did."
    )


# --- compare -------------------------------------------------------------------------


def _side_runs(settings: Settings, sweep_id: int, text: str | None, side: str) -> list[dict]:
    from service.compare import CompareError, parse_filters, select

    _, runs = load_sweep(settings, sweep_id)
    try:
        return select(runs, parse_filters(text), side, text or "")
    except CompareError as exc:
        raise BadInput(str(exc)) from None


@click.command("compare")
@click.argument("sweep_id", type=int)
@click.option(
    "--a", "a_text", default=None, help="Filter for A, e.g. 'learning_rate=0.5,hidden=2'."
)
@click.option("--b", "b_text", default=None, help="Filter for B (in --sweep-b if given).")
@click.option("--sweep-b", type=int, default=None, help="Take B from this sweep instead.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(
        ("final_loss", "solved_epoch", "best_loss", "accuracy", "epochs_run", "wall_time_s")
    ),
    help="Metric(s) to compare [default: final_loss and solved_epoch].",
)
@format_option
@click.pass_obj
def compare(
    settings: Settings,
    sweep_id: int,
    a_text: str | None,
    b_text: str | None,
    sweep_b: int | None,
    metrics: tuple[str, ...],
    fmt: str,
) -> None:
    """Compare configuration A with B, paired by seed: mean difference A - B with a
    bootstrap 95% CI, and the Wilcoxon signed-rank test.

    Runs that never reached the criterion are left out of the solved_epoch comparison
    (their counts are reported); runs that failed, were cancelled or ended with a
    non-finite value are left out of the other metrics.
    """
    from service.compare import DEFAULT_METRICS, CompareError
    from service.compare import compare as run_compare

    b_sweep = sweep_b if sweep_b is not None else sweep_id
    if b_sweep == sweep_id and not (a_text and b_text):
        raise BadInput("give both --a and --b (or --sweep-b to compare two sweeps)")
    a_runs = _side_runs(settings, sweep_id, a_text, "A")
    b_runs = _side_runs(settings, b_sweep, b_text, "B")
    try:
        result = run_compare(a_runs, b_runs, metrics or DEFAULT_METRICS)
    except CompareError as exc:
        raise BadInput(str(exc)) from None
    result["a"] = {"sweep_id": sweep_id, "filter": a_text or "", "runs": len(a_runs)}
    result["b"] = {"sweep_id": b_sweep, "filter": b_text or "", "runs": len(b_runs)}
    if fmt == "json":
        render([result], "json")
        return
    rows = [
        {
            "metric": r["metric"],
            "pairs": r["n_pairs"],
            "A median": r["a_median"],
            "B median": r["b_median"],
            "mean A-B": r["mean_diff"],
            "CI low": r["ci_low"],
            "CI high": r["ci_high"],
            "Wilcoxon p": r["p_value"],
        }
        for r in result["metrics"]
    ]
    if fmt == "csv":
        render(rows, "csv")
        return
    for side in ("a", "b"):
        s = result[side]
        click.echo(
            f"{side.upper()}: {s['filter'] or 'all runs'} (sweep {s['sweep_id']}, {s['runs']} runs)"
        )
    render(rows, "table", title=f"A vs B, paired by seed ({result['pairs']} seeds)")
    for line in result["summary"]:
        click.echo(line)


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
) -> None:
    """Curves of sweep ID: per configuration, the mean over seeds with a shaded band.

    With --run, ID is a run id and the plot shows that run's curve (and its validation
    loss when recorded).
    """
    from service import plots
    from service.curves import group_bands, load_curves

    if Path(output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise BadInput(f"-o {output!r}: the file must end in .png, .svg or .pdf")
    output_path(output)
    use_log = log if log is not None else metric != "accuracy"
    if is_run:
        _plot_run(settings, target_id, output, metric, use_log)
        return
    sweep, runs = load_sweep(settings, target_id)
    group_by = parse_by(by, sweep, runs)
    with session_scope(settings.database_url, readonly=True) as session:
        curves = load_curves(session, sweep_id=target_id, metrics=[metric])
    lines = group_bands(runs, curves, group_by, metric, band)
    if not lines:
        raise BadInput(f"sweep {target_id} has no recorded {metric} to plot")
    fig = plots.sweep_figure(
        lines, metric=metric, log=use_log, band=band, title=f"sweep {target_id}: {sweep['name']}"
    )
    with writing_to(output):
        plots.save(fig, output)
    click.echo(f"wrote {output}: {len(lines)} configuration(s)", err=True)


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


# --- export --------------------------------------------------------------------------


@click.command("export")
@click.argument("sweep_id", type=int)
@click.option("-o", "--output", required=True, help="out.csv or out.json")
@click.option("--curves", "with_curves", is_flag=True, help="Add the per-epoch table.")
@click.pass_obj
def export(settings: Settings, sweep_id: int, output: str, with_curves: bool) -> None:
    """Write SWEEP_ID's runs (parameters and summaries) to a CSV or JSON file.

    CSV: one column per parameter; --curves writes the epochs to NAME.curves.csv beside it.
    JSON: {"sweep", "runs", "curves"}; NaN and infinities as "NaN", "Infinity", "-Infinity".
    """
    from service import export as ex

    path = Path(output)
    kind = path.suffix.lower()
    if kind not in (".csv", ".json"):
        raise BadInput(f"-o {output!r}: the file must end in .csv or .json")
    output_path(output)
    sweep, runs = load_sweep(settings, sweep_id)
    curves = None
    if with_curves:
        with session_scope(settings.database_url, readonly=True) as session:
            curves = ex.curve_rows(session, sweep_id)
    records = [public_run(r) for r in runs]
    with writing_to(path):
        _write_export(path, kind, sweep, records, curves)


def _write_export(
    path: Path, kind: str, sweep: dict, records: list[dict], curves: list[dict] | None
) -> None:
    from service import export as ex

    runs = records
    if kind == ".json":
        ex.write_json(path, sweep, records, curves)
        extra = f" and {len(curves)} epoch rows" if curves is not None else ""
        click.echo(f"wrote {len(runs)} runs{extra} to {path}", err=True)
        return
    ex.write_csv(
        path, [ex.flat_run(r) for r in records], [*ex.RUN_COLUMNS, *ex.param_columns(records)]
    )
    msg = f"wrote {len(runs)} runs to {path}"
    if curves is not None:
        cpath = ex.curves_path(path)
        ex.write_csv(cpath, curves, ex.CURVE_COLUMNS)
        msg += f" and {len(curves)} epoch rows to {cpath}"
    click.echo(msg, err=True)


# --- sql -----------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, bytes | memoryview):
        return f"<{len(value)} bytes>"
    return value


@click.command("sql")
@click.argument("query")
@format_option
@click.pass_obj
def sql(settings: Settings, query: str, fmt: str) -> None:
    """Run one read-only SQL statement on the results database and print its rows.

    The database itself refuses writes (SQLite opened read-only; PostgreSQL in a READ ONLY
    transaction, logged in as the SELECT-only role BPLAB_SQL_ROLE, default bplab_reader, or
    as BPLAB_SQL_URL's user; never as a superuser). Tables: sweeps, runs, epoch_metrics,
    run_weights, checkpoints; views: run_summary, config_summary (see the README, "Querying
    results").
    """
    from service.sqlconsole import SQLRefused, run_readonly

    try:
        result = run_readonly(settings.database_url, query, settings)
    except SQLRefused as exc:
        raise BadInput(f"sql: {exc}") from None
    if not result.columns:
        click.echo("(the statement returned no rows)", err=True)
        return
    columns: list[str] = []
    for name in result.columns:  # SELECT 1, 1 has two columns of the same name
        unique, n = name, 1
        while unique in columns:
            n += 1
            unique = f"{name}_{n}"
        columns.append(unique)
    rows = [dict(zip(columns, map(_shown, r), strict=True)) for r in result.rows]
    render(rows, fmt, columns=columns)


RESULTS_COMMANDS = (results, compare, plot, export, sql)
