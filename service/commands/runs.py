"""`bplab runs` and `bplab run ...`: one sweep's runs, and one run's details, curve and weights."""

from __future__ import annotations

import click
import numpy as np

from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_option, output_path, render, writing_to
from service.records import RUN_FIELDS, public_run, run_record
from service.results import param_value

STATUSES = ("queued", "running", "succeeded", "diverged", "failed", "cancelled", "pruned")
RUN_TABLE_COLUMNS = (
    "id",
    "status",
    "seed",
    "epochs_run",
    "final_loss",
    "best_loss",
    "accuracy",
    "solved_epoch",
)


@click.command("runs")
@click.argument("sweep_id", type=int)
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only runs with this status."
)
@click.option(
    "--sort", default="id", show_default=True, help="A run field; prefix - for descending."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many runs.")
@format_option
@click.pass_obj
def runs(
    settings: Settings, sweep_id: int, status: str | None, sort: str, limit: int | None, fmt: str
) -> None:
    """One row per run of SWEEP_ID."""
    if sort.lstrip("-") not in RUN_FIELDS:
        raise BadInput(f"--sort: unknown field {sort!r}; allowed: {', '.join(RUN_FIELDS)}")
    with session_scope(settings.database_url, readonly=True) as session:
        sweep_row = repo.get_sweep(session, sweep_id)
        if sweep_row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        swept = list(sweep_row.swept)
        records = [
            run_record(r)
            for r in repo.list_runs(session, sweep_id, status=status, sort=sort, limit=limit)
        ]
    if fmt == "json":
        render([public_run(r) for r in records], fmt)
        return
    rows = [{**{p: param_value(r["params"], p) for p in swept}, **r} for r in records]
    # patience / restore_best: shown when some run tracked them
    early = [c for c in ("best_epoch", "stopped_epoch") if any(r[c] is not None for r in rows)]
    render(
        rows,
        fmt,
        columns=[RUN_TABLE_COLUMNS[0], *swept, *RUN_TABLE_COLUMNS[1:], *early],
        drop=("best_loss", "epochs_run", "seed"),
    )


@click.group("run")
def run() -> None:
    """Inspect one run: its summary, its curve, its weights."""


@run.command("show")
@click.argument("run_id", type=int)
@format_option
@click.pass_obj
def show(settings: Settings, run_id: int, fmt: str) -> None:
    """A run's parameters, status and summary."""
    record = _run_or_exit(settings, run_id)
    if fmt == "table":
        fields = [{"field": k, "value": v} for k, v in public_run(record).items() if k != "params"]
        fields += [{"field": f"params.{k}", "value": v} for k, v in record["params"].items()]
        render(fields, "table", title=f"run {run_id}")
    else:
        render([public_run(record)], fmt)


@run.command("curve")
@click.argument("run_id", type=int)
@click.option(
    "--tail",
    type=click.IntRange(min=1),
    default=None,
    help="Only the last N recorded epochs.",
)
@format_option
@click.pass_obj
def curve(settings: Settings, run_id: int, tail: int | None, fmt: str) -> None:
    """A run's recorded epochs: epoch, loss and the other metrics.

    A table like every other command; --format csv or json for a file or a script.
    Validation columns appear in the table only when the run held patterns out.
    """
    _run_or_exit(settings, run_id)
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "max_error"]
    with session_scope(settings.database_url, readonly=True) as session:
        rows = [{c: getattr(row, c) for c in columns} for row in repo.epoch_rows(session, run_id)]
    if tail is not None:
        rows = rows[-tail:]
    if fmt == "table":
        columns = [c for c in columns if c == "epoch" or any(r[c] is not None for r in rows)]
    render(rows, fmt, columns=columns, title=f"run {run_id}: {len(rows)} recorded epoch(s)")


@run.command("weights")
@click.argument("run_id", type=int)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    help="The file to write, in .npz format (arrays W1, b1, W2, b2, ...).",
)
@click.pass_obj
def weights(settings: Settings, run_id: int, output: str) -> None:
    """Write a run's final weights to an .npz file that engine.Network can load."""
    path = output_path(output)
    _run_or_exit(settings, run_id)
    try:
        with session_scope(settings.database_url, readonly=True) as session:
            arrays = repo.load_weights(session, run_id)
    except repo.NotFound:
        raise NotFound(f"run {run_id} has no stored weights (only finished runs have)") from None
    named = {f"{'W' if i % 2 == 0 else 'b'}{i // 2 + 1}": a for i, a in enumerate(arrays)}
    # Through a file object: given a name, np.savez appends .npz to one that lacks it, and
    # `-o w.txt` wrote w.txt.npz while saying it wrote w.txt.
    with writing_to(path), path.open("wb") as fh:
        np.savez(fh, **named)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    click.echo(f"wrote {len(arrays)} arrays to {path}", err=True)


def _run_or_exit(settings: Settings, run_id: int) -> dict:
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_run(session, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        return run_record(row)
