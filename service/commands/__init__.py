"""Subcommands of the ``bplab`` CLI, one module per group."""

from __future__ import annotations

import click


def register_commands(group: click.Group) -> None:
    """Attach every subcommand module's commands to the top-level group."""
    from service.commands import datasets, db, inspect, remote, runs, sweep, worker

    group.add_command(db.db)
    group.add_command(sweep.sweep)
    for command in remote.REMOTE_COMMANDS:  # submit, watch, status, republish
        sweep.sweep.add_command(command)
    from service.commands import recovery

    for command in recovery.RECOVERY_COMMANDS:  # cancel, retry, recover
        sweep.sweep.add_command(command)
    group.add_command(runs.runs)
    group.add_command(runs.run)
    group.add_command(datasets.datasets)
    group.add_command(worker.worker)
    group.add_command(inspect.inspect)
    from service.commands import results  # results, compare, plot, export, sql

    for command in results.RESULTS_COMMANDS:
        group.add_command(command)
    from service.commands import plot

    group.add_command(plot.plot)
    group.add_command(__import__("service.commands.dashboard").commands.dashboard.dashboard)
    from service.commands import manage  # extend, delete, rename, tag, note; best (issue 19)

    for command in manage.SWEEP_COMMANDS:
        sweep.sweep.add_command(command)
    for command in manage.TOP_COMMANDS:
        group.add_command(command)
    __import__("service.commands.search").commands.search.register(group)  # issue 16
