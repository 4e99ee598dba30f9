"""A click group whose subcommands are imported only when one of them is run or its help asked.

This is click's "lazy loading" pattern (Complex Applications in click's docs), written for
bplab. Importing every command module made each `bplab ...` pay for NumPy, SQLAlchemy and the
database layer, about 1 s, before doing anything. A group's own --help lists its commands with a
one-line summary, and click would import every command to read it; so each entry carries its
summary beside its import path (tests/cli/test_lazy_cli.py holds each summary against the
command's own docstring), and `bplab --help` and `bplab sweep --help` import no command module.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from service import program


@dataclass(frozen=True)
class LazyCommand:
    """Where a subcommand lives, and what its group's --help says of it without importing it."""

    target: str  # "package.module:attribute", the click command
    summary: str  # its short help as click prints it in full (the docstring's first sentence)
    # model-based search handles this command's adaptive sweeps first (ADAPTIVE_ROUTES in
    # service.commands.search); None for commands the search leaves alone
    adaptive_route: str | None = None


class LazyGroup(click.Group):
    """A group that imports a ``LazyCommand`` the first time click asks for it by name."""

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        entry = self.lazy_commands[name]
        module_name, _, attribute = entry.target.partition(":")
        # The cyclic collector would scan the import's new objects (SQLAlchemy, NumPy, the
        # models: 130,000 of them, 457 garbage) again and again, finding next to nothing: a
        # module lives as long as the program. So the program pauses it, and gc.freeze
        # (CPython's tool for this) keeps them out of every later collection, the pool's
        # forked processes' too (measured: CPU x0.96 for 3 epochs, x0.94 for 3,000 epochs).
        pause = program.owns_process() and gc.isenabled()  # not in a test or a notebook
        if pause:
            gc.disable()
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        finally:
            if pause:
                gc.freeze()
                gc.enable()
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.target} is not a click command")
        if entry.adaptive_route is not None:
            from service.commands.search import route

            route(entry.adaptive_route, command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's listing of the subcommands, from the summaries of those not yet imported."""
        loaded = self.commands
        names = [n for n in self.list_commands(ctx) if n not in loaded or not loaded[n].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # not imported yet: a stand-in with the summary as its help, shortened as click would
            command = loaded.get(name) or click.Command(name, help=self.lazy_commands[name].summary)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
