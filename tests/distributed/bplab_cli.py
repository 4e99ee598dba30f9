"""The `bplab` CLI as the tests run it, by path, so that subprocesses need no PYTHONPATH.

``bplab_cli()`` is the real CLI (service.cli.cli); every command, the distributed ones
included, is attached there (lazily: service.commands).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

# Run as a script by path, so that subprocesses need no PYTHONPATH and may run in any directory.
BPLAB = [sys.executable, str(Path(__file__).resolve())]


def bplab_cli() -> click.Group:
    from service.cli import cli

    return cli


if __name__ == "__main__":
    bplab_cli()(prog_name="bplab")
