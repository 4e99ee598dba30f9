"""Subcommands of the ``bplab`` CLI, one module per group."""

from __future__ import annotations

import click


def register_commands(group: click.Group) -> None:
    """Attach every subcommand module's commands to the top-level group."""
    from service.commands import db

    group.add_command(db.db)
