"""The `bplab` CLI as the tests run it: the real one, plus the distributed commands if missing.

TEMPORARY: service/commands/__init__.py (not ours to edit) does not attach `bplab worker` and
`bplab sweep submit|watch|status|republish` yet. Once it does, ``bplab_cli()`` returns the real
CLI unchanged and this module can go (use ``[sys.executable, "-m", "service.cli"]`` instead).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

# Run as a script by path, so that subprocesses need no PYTHONPATH and may run in any directory.
BPLAB = [sys.executable, str(Path(__file__).resolve())]


def bplab_cli() -> click.Group:
    from service.cli import cli
    from service.commands.remote import REMOTE_COMMANDS
    from service.commands.worker import worker

    if "sweep" not in cli.commands:
        from service.commands.sweep import sweep

        cli.add_command(sweep)
    sweep_group = cli.commands["sweep"]
    assert isinstance(sweep_group, click.Group)
    for command in REMOTE_COMMANDS:
        if command.name not in sweep_group.commands:
            sweep_group.add_command(command)
    if "runs" not in cli.commands:
        from service.commands.runs import runs

        cli.add_command(runs)
    if "worker" not in cli.commands:
        cli.add_command(worker)
    return cli


if __name__ == "__main__":
    bplab_cli()(prog_name="bplab")
