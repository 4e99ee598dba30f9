"""`bplab sweep extend | delete | rename | tag | note` and `bplab best` (issue 19).

Standalone click commands, attached by service.commands (the sweep ones to the ``sweep``
group). The logic lives in service.management, service.best and service.db.management.
"""

from __future__ import annotations

from typing import Any

import click
import yaml

from service.config import Settings
from service.db import management as mgmt
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.management import ManageError, check_provenance, parse_seeds, parse_tag
from service.output import format_option, render
from service.spec import DEFAULT_MAX_RUNS, SweepSpec


def _require_sweep(settings: Settings, sweep_id: int) -> dict[str, Any]:
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        return {"id": row.id, "name": row.name, "backend": row.backend, "n_runs": row.n_runs}


def refuse_changed_data(settings: Settings, sweep_id: int, action: str) -> None:
    """BadInput when the sweep's csv:/npz: file changed since it was recorded (provenance):
    `sweep resume`, `retry` and `extend` call it before anything is written."""
    with session_scope(settings.database_url, readonly=True) as session:
        try:
            check_provenance(session, sweep_id, action)
        except ManageError as exc:
            raise BadInput(str(exc)) from None


def parse_tag_filters(tags: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """`sweep list --tag KEY[=VALUE]` options as pairs; BadInput if malformed."""
    try:
        return [parse_tag(t, value_required=False) for t in tags]
    except ManageError as exc:
        raise BadInput(f"--tag: {exc}") from None


def filter_sweeps(
    session: Any,
    name: str | None,
    dataset: str | None,
    tags: list[tuple[str, str | None]],
    *,
    compact: bool = False,
) -> list[dict[str, Any]]:
    """`sweep list`'s rows that match the filters, each with its tags and note (``compact``,
    for a table: the two columns only when some sweep has one, tags as k=v)."""
    from service.management import sweep_rows

    out = sweep_rows(session, name=name, dataset=dataset, tags=tags)
    for column in ("tags", "note") if compact else ():
        if not any(r[column] for r in out):
            for r in out:
                del r[column]
        elif column == "tags":
            for r in out:
                r["tags"] = ", ".join(f"{k}={v}" for k, v in r["tags"].items())
    return out


def sweep_labels(settings: Settings, sweep_id: int) -> dict[str, Any]:
    """What `sweep show` adds: the note, the tags and the data file's recorded sha256."""
    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        tags = mgmt.tags_of(session, [sweep_id]).get(sweep_id, {})
        return {
            "note": row.note if row is not None else None,
            "tags": tags,
            "data_sha256": row.data_sha256 if row is not None else None,
        }


# --- extend --------------------------------------------------------------------------------


def _more_spec(path: str | None, max_runs: int) -> tuple[SweepSpec | None, bool]:
    """--spec loaded and checked, and whether it names its own seeds."""
    if path is None:
        return None, False
    from service.commands.common import load_spec_or_exit

    spec = load_spec_or_exit(path, max_runs)
    with open(path, encoding="utf-8") as fh:  # readable: load_spec just read it
        raw = yaml.safe_load(fh)
    return spec, isinstance(raw, dict) and raw.get("seeds") is not None


@click.command("extend")
@click.argument("sweep_id", type=int)
@click.option("--seeds", "seeds_text", default=None, help="N (seeds 0..N-1) or a list: 5,6,7.")
@click.option("--spec", "spec_path", default=None, help="A spec whose configurations join.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None, help="Local runs.")
@click.option(
    "--max-runs",
    type=click.IntRange(min=1, max=100_000),
    default=DEFAULT_MAX_RUNS,
    show_default=True,
    help="Refuse an extension that adds more runs than this.",
)
@format_option
@click.pass_obj
def extend(
    settings: Settings,
    sweep_id: int,
    seeds_text: str | None,
    spec_path: str | None,
    workers: int | None,
    max_runs: int,
    fmt: str,
) -> None:
    """Add seeds (--seeds) or configurations (--spec) to SWEEP_ID and train the new runs.

    The sweep becomes its configurations x its seeds again: only (configuration, seed)
    cells it does not have yet become runs, once, trained here (a local sweep) or by the
    Celery workers (a Celery sweep). A spec's seeds join only when it names them.
    """
    from service.management import extend_sweep, plan_extension

    if seeds_text is None and spec_path is None:
        raise BadInput("give --seeds and/or --spec: what to add to the sweep")
    try:
        seeds = parse_seeds(seeds_text) if seeds_text is not None else None
    except ManageError as exc:
        raise BadInput(str(exc)) from None
    more, more_seeds = _more_spec(spec_path, max_runs)
    sweep = _require_sweep(settings, sweep_id)
    refuse_changed_data(settings, sweep_id, "extend")
    if sweep["backend"] == "celery" and not settings.broker_url:
        raise BadInput(
            f"sweep {sweep_id} runs on Celery workers: set BPLAB_BROKER_URL to extend it"
        )
    with session_scope(settings.database_url, readonly=True) as session:
        try:
            plan = plan_extension(session, sweep_id, seeds=seeds, more=more, more_seeds=more_seeds)
        except ManageError as exc:
            raise BadInput(str(exc)) from None
    if len(plan.runs) > max_runs:
        raise BadInput(
            f"extending sweep {sweep_id} adds {len(plan.runs)} runs, more than the limit of "
            f"{max_runs}; add fewer seeds or values, or raise it with --max-runs"
        )
    if not plan.runs:
        click.echo(
            f"sweep {sweep_id}: nothing to add, every cell is in the sweep already", err=True
        )
        return

    def record(session: Any) -> list[int]:
        try:  # planned again under the sweep's lock: another extend may have come first
            return extend_sweep(session, sweep_id, seeds=seeds, more=more, more_seeds=more_seeds)
        except ManageError as exc:
            raise BadInput(str(exc)) from None

    if sweep["backend"] == "celery":
        _extend_on_celery(settings, sweep_id, record)
        return
    with session_scope(settings.database_url) as session:
        added = record(session)
    click.echo(_added(sweep_id, added, plan.seeds_added, plan.configs_added), err=True)
    from service.commands.common import run_locally

    run_locally(settings, sweep_id, workers, fmt)


def _extend_on_celery(settings: Settings, sweep_id: int, record: Any) -> None:
    from service.config import mask_url
    from service.dispatch import DispatchError, submit_runs

    assert settings.broker_url
    try:
        done = submit_runs(settings.database_url, settings.broker_url, sweep_id, record)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"sweep {sweep_id}: {done.runs} more run(s) queued in {done.tasks} task(s) on "
        f"{mask_url(settings.broker_url)}; follow it with `bplab sweep watch {sweep_id}`",
        err=True,
    )


def _added(sweep_id: int, added: list[int], seeds: list[int], configs: int) -> str:
    seeds_text = f"new seeds {', '.join(map(str, seeds))}" if seeds else "no new seeds"
    return (
        f"sweep {sweep_id}: added {len(added)} run(s) "
        f"({seeds_text}, {configs} new configuration(s))"
    )


# --- delete, rename, tag, note -------------------------------------------------------------


@click.command("delete")
@click.argument("sweep_id", type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(settings: Settings, sweep_id: int, yes: bool) -> None:
    """Delete SWEEP_ID with its runs, epoch rows, weights, checkpoints and tags (one transaction).

    Refused while runs are running: cancel the sweep first (`bplab sweep cancel ID`).
    """
    sweep = _require_sweep(settings, sweep_id)
    with session_scope(settings.database_url, readonly=True) as session:
        running = mgmt.running_count(session, sweep_id)
    if running:
        raise BadInput(_busy(sweep_id, running))
    if not yes:
        click.confirm(
            f"delete sweep {sweep_id} ({sweep['name']}) and its {sweep['n_runs']} run(s) with "
            "their curves, weights and checkpoints?",
            abort=True,
            err=True,
        )
    with session_scope(settings.database_url) as session:
        try:
            counts = mgmt.delete_sweep(session, sweep_id)
        except mgmt.SweepBusy:
            raise BadInput(_busy(sweep_id, mgmt.running_count(session, sweep_id))) from None
    click.echo(
        f"deleted sweep {sweep_id}: {counts['runs']} run(s), {counts['epoch_rows']} epoch row(s), "
        f"{counts['weights']} weight set(s), {counts['checkpoints']} checkpoint(s)",
        err=True,
    )


def _busy(sweep_id: int, running: int) -> str:
    return (
        f"sweep {sweep_id} has {running} running run(s); cancel it first "
        f"(`bplab sweep cancel {sweep_id}`), then delete it"
    )


@click.command("rename")
@click.argument("sweep_id", type=int)
@click.argument("name")
@click.pass_obj
def rename(settings: Settings, sweep_id: int, name: str) -> None:
    """Give SWEEP_ID a new NAME."""
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInput("NAME: a sweep name is 1 to 200 characters")
    _require_sweep(settings, sweep_id)
    with session_scope(settings.database_url) as session:
        mgmt.rename_sweep(session, sweep_id, name)
    click.echo(f"sweep {sweep_id}: renamed {name!r}", err=True)


@click.command("tag")
@click.argument("sweep_id", type=int)
@click.argument("tags", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--remove", "-r", "removed", multiple=True, metavar="KEY", help="Remove a tag.")
@format_option
@click.pass_obj
def tag(
    settings: Settings, sweep_id: int, tags: tuple[str, ...], removed: tuple[str, ...], fmt: str
) -> None:
    """Set tags (KEY=VALUE) of SWEEP_ID, remove some (--remove KEY), and print its tags."""
    try:
        pairs = dict(parse_tag(t) for t in tags)
    except ManageError as exc:
        raise BadInput(str(exc)) from None
    _require_sweep(settings, sweep_id)
    if pairs or removed:
        with session_scope(settings.database_url) as session:
            mgmt.remove_tags(session, sweep_id, list(removed))
            mgmt.set_tags(session, sweep_id, {k: v or "" for k, v in pairs.items()})
    with session_scope(settings.database_url, readonly=True) as session:
        current = mgmt.tags_of(session, [sweep_id]).get(sweep_id, {})
    render([{"key": k, "value": v} for k, v in current.items()], fmt, columns=["key", "value"])


@click.command("note")
@click.argument("sweep_id", type=int)
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Remove the note.")
@click.pass_obj
def note(settings: Settings, sweep_id: int, text: str | None, clear: bool) -> None:
    """Describe SWEEP_ID with TEXT (shown by `sweep show` and `sweep list`)."""
    if clear == (text is not None):
        raise BadInput("give TEXT, or --clear to remove the note")
    _require_sweep(settings, sweep_id)
    with session_scope(settings.database_url) as session:
        mgmt.set_note(session, sweep_id, None if clear else text)
    click.echo(f"sweep {sweep_id}: note {'removed' if clear else 'saved'}", err=True)


# --- best --------------------------------------------------------------------------------


@click.command("best")
@click.argument("sweep_id", type=int, metavar="SWEEP")
@click.option("--metric", default=None, help="final_loss, best_loss, val_loss, accuracy, ...")
@click.option("--goal", default=None, help="min or max [default: the metric's].")
@click.option("--aggregate", default="mean", show_default=True, help="mean or median over seeds.")
@format_option
@click.pass_obj
def best(
    settings: Settings,
    sweep_id: int,
    metric: str | None,
    goal: str | None,
    aggregate: str,
    fmt: str,
) -> None:
    """The best configuration of SWEEP by an objective over its seeds, its spread, and how it
    compares with the runner-up (paired by seed, as `bplab compare` does)."""
    from service.best import BestError, lines
    from service.best import best as find_best
    from service.commands.results import load_sweep

    sweep, runs = load_sweep(settings, sweep_id)
    try:
        answer = find_best(sweep, runs, metric=metric, goal=goal, aggregate=aggregate)
    except BestError as exc:
        raise BadInput(str(exc)) from None
    if fmt == "json":
        render([answer], "json")
    elif fmt == "csv":
        rows = [
            {"rank": rank, **r["params"], **{k: r[k] for k in ("value", "sd", "min", "max")}}
            for rank, r in ((1, answer["best"]), (2, answer["runner_up"]))
            if r is not None
        ]
        render(rows, "csv")
    else:
        for line in lines(answer):
            click.echo(line)


SWEEP_COMMANDS = (extend, delete, rename, tag, note)
TOP_COMMANDS = (best,)
