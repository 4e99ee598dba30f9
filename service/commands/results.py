"""`bplab results`, `compare`, `plot`, `export` and `sql`: reading a sweep's outcome back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_option, output_path, render, writing_to
from service.records import public_run, run_record, sweep_record
from service.results import (
    DISPLAY_DROP,
    SUMMARY_COLUMNS,
    display_rows,
    summarize,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def load_sweep(settings: Settings, sweep_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sweep as a plain dict and its runs as records; NotFound if there is no such sweep."""
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        sweep = sweep_record(row)
        runs = [run_record(r) for r in repo.list_runs(session, sweep_id)]
        with_val_accuracy(session, sweep_id, runs)
    return sweep, runs


def with_val_accuracy(session: Session, sweep_id: int, runs: list[dict[str, Any]]) -> None:
    """Give each run record its final val_accuracy (None without a validation split)."""
    from service.db.queries import last_val_accuracy

    validated = any(r["config"].get("validation_split") for r in runs)
    found = last_val_accuracy(session, sweep_id) if validated else {}
    for record in runs:
        record["val_accuracy"] = found.get(record["id"])


def config_keys(runs: list[dict[str, Any]]) -> list[str]:
    return sorted({k for r in runs for k in r["config"]})


def parse_by(by: str | None, sweep: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """--by as a list of configuration keys (default: the swept ones); BadInput if unknown."""
    if by is None:
        return list(sweep["swept"])
    # dict.fromkeys: `--by a,a` groups (and prints) a once
    names = list(dict.fromkeys(n.strip() for n in by.split(",") if n.strip()))
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
    render(shown, fmt, columns=shown_columns, title=title, drop=DISPLAY_DROP)
    if "solved" in shown_columns:
        click.echo(
            "solved: share of finished runs that reached stop_within;\n"
            "epochs to solve: median [quartiles] over the runs that did."
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
        (
            "final_loss",
            "solved_epoch",
            "best_loss",
            "accuracy",
            "val_loss",
            "val_accuracy",
            "epochs_run",
            "wall_time_s",
        )
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
    _refuse_unlike(a_runs, b_runs)
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


def _refuse_unlike(a_runs: list[dict], b_runs: list[dict]) -> None:
    """Losses on different data, or under different costs, are not on one scale: a paired
    difference between them means nothing, so such a comparison is refused."""
    for key in ("dataset", "cost"):
        values = {str(r["config"].get(key)) for r in [*a_runs, *b_runs]}
        if len(values) > 1:
            a = sorted({str(r["config"].get(key)) for r in a_runs})
            b = sorted({str(r["config"].get(key)) for r in b_runs})
            raise BadInput(
                f"A and B differ in {key} (A: {', '.join(a)}; B: {', '.join(b)}): their losses "
                f"are not comparable; choose runs with one {key} (e.g. add {key}={b[0]} to --a)"
            )


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


RESULTS_COMMANDS = (results, compare, export, sql)  # plot: service.commands.plot
