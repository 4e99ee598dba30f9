"""The ``bplab`` command line: a click group whose subcommands live in service/commands/."""

from __future__ import annotations

import click

from service.commands import register_commands
from service.config import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bplab")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """bplab: train backpropagation networks and sweep their hyperparameters.

    With no servers configured, results go to the SQLite file bplab.db and runs to a
    local process pool. Set BPLAB_DATABASE_URL and BPLAB_BROKER_URL to use
    PostgreSQL and Celery workers over Redis instead.
    """
    ctx.obj = get_settings()


register_commands(cli)


def main() -> None:
    cli(prog_name="bplab")


if __name__ == "__main__":
    main()
