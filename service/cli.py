"""The ``bplab`` command line: a click group whose subcommands live in service/commands/."""

from __future__ import annotations

import click

from service.commands import TOP_COMMANDS, sweep
from service.commands.lazy import LazyGroup
from service.config import Settings, SettingsError, get_settings, load_settings
from service.errors import BadInput


class BplabGroup(LazyGroup):
    """The top-level group: a failure the user can cause is one line and an exit code.

    Its commands are imported when used (service.commands.lazy), so that `bplab --help`
    starts in a fraction of the second the command modules' imports take.

    Database failures (service.commands.failures) exit 2 (1 for a busy SQLite file); Ctrl-C
    exits 130, the shell's code for SIGINT, after the command has kept what it finished.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except (click.ClickException, click.exceptions.Exit):
            raise  # Exit is how click ends `--help` and ctx.exit(): no failure to explain
        except Exception as exc:
            from service.commands.failures import database_failure

            settings = ctx.obj if isinstance(ctx.obj, Settings) else get_settings()
            failure = database_failure(exc, settings.database_url)
            if failure is None:
                raise
            raise failure from None


@click.group(
    cls=BplabGroup,
    lazy_commands=TOP_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="bplab")
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="The results database, over BPLAB_DATABASE_URL and bplab.toml's database_url.",
)
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """bplab: train backpropagation networks and sweep their hyperparameters.

    With no servers configured, results go to the SQLite file bplab.db and runs to a
    local process pool. Set BPLAB_DATABASE_URL and BPLAB_BROKER_URL to use
    PostgreSQL and Celery workers over Redis instead.
    """
    try:
        # --db is the highest layer of the settings (option > environment > file > default)
        ctx.obj = load_settings({"database_url": db_url}) if db_url else get_settings()
    except SettingsError as exc:  # a bad BPLAB_* value or config file: one line, exit 2
        raise BadInput(str(exc)) from None


cli.add_command(sweep)


def main() -> None:
    from service import program

    program.claim()  # its pools may fork, its imports pause the collector (service.program)
    try:
        cli(prog_name="bplab")  # click's standalone mode ends every command with sys.exit
    except SystemExit as request:
        program.end_program(request)


if __name__ == "__main__":
    main()
