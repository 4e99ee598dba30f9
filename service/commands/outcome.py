"""How a local sweep ends for the shell: failures named, exit codes, and what is refused.

`sweep run`, `sweep resume` and `sweep watch` print the results table either way; then a
sweep with failed runs exits 1 after one line per failed configuration (its first error),
and an interrupted one exits 130, the shell's code for Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

import click

from service.config import Settings
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput
from service.records import run_record

# A run's heartbeat younger than this belongs to a live process (the recorder refreshes it
# at least every couple of seconds while training); service.sweeps takes back older ones.
LIVE_HEARTBEAT_S = 30.0


def failed_configurations(settings: Settings, sweep_id: int) -> list[str]:
    """One line per configuration with failed runs: its swept values, how many, first error."""
    with session_scope(settings.database_url, readonly=True) as session:
        sweep_row = repo.get_sweep(session, sweep_id)
        swept = list(sweep_row.swept) if sweep_row is not None else []
        failed = [run_record(r) for r in repo.list_runs(session, sweep_id, status="failed")]
    by_config: dict[str, list[dict[str, Any]]] = {}
    for record in failed:
        label = ", ".join(f"{p}={_short(record['params'].get(p))}" for p in swept) or "the config"
        by_config.setdefault(label, []).append(record)
    lines = []
    for label, records in by_config.items():
        first = min(records, key=lambda r: r["id"])
        error = (str(first["error"] or "no error recorded").strip().splitlines() or ["?"])[0]
        lines.append(f"failed: {label} ({len(records)} run(s), first run {first['id']}): {error}")
    return lines


def finish(settings: Settings, sweep_id: int, *, interrupted: bool = False, left: int = 0) -> None:
    """After the results table: name the failures; exit 130 if interrupted, 1 if runs failed."""
    lines = failed_configurations(settings, sweep_id)
    for line in lines:
        click.echo(line, err=True)
    if interrupted:
        click.echo(
            f"interrupted: finished runs are kept; continue with `bplab sweep resume {sweep_id}` "
            f"({left} run(s) left queued)",
            err=True,
        )
        raise click.exceptions.Exit(130)
    if lines:
        click.echo(
            f"sweep {sweep_id}: runs failed; `bplab runs {sweep_id} --status failed` lists them, "
            f"`bplab sweep retry {sweep_id} --failed` runs them again",
            err=True,
        )
        raise click.exceptions.Exit(1)


def warn_oversubscribed(workers: int | None) -> None:
    """More worker processes than cores only make every run slower: say so, then go on."""
    cores = os.cpu_count() or 1
    if workers is not None and workers > cores:
        click.echo(
            f"warning: --workers {workers} on {cores} core(s): the processes share the cores "
            f"and each run is slower; --workers {cores} finishes as soon",
            err=True,
        )


def refuse_live_resume(settings: Settings, sweep_id: int, force: bool) -> None:
    """A second `sweep resume` while another process trains the sweep would race it."""
    if force:
        return
    with session_scope(settings.database_url, readonly=True) as session:
        running = repo.list_runs(session, sweep_id, status="running")
        beats = [r.heartbeat_at for r in running]
    live = _live(beats)
    if live:
        raise BadInput(
            f"sweep {sweep_id} is being trained by another process ({live} run(s) with a "
            f"heartbeat in the last {LIVE_HEARTBEAT_S:g} s); wait for it to finish, or stop it "
            "first (--force takes the runs back anyway)"
        )


def _live(beats: Sequence[dt.datetime | None]) -> int:
    now = dt.datetime.now(dt.UTC)
    fresh = 0
    for beat in beats:
        if beat is None:
            continue
        when = beat if beat.tzinfo else beat.replace(tzinfo=dt.UTC)
        if (now - when).total_seconds() < LIVE_HEARTBEAT_S:
            fresh += 1
    return fresh


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
