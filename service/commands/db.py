"""``bplab db``: bring the results database's schema up to date, or show its revision.

Failures to reach or open the database are left to the CLI's group, which reports them as
one line (service.commands.failures).
"""

from __future__ import annotations

import click

from service.config import Settings, mask_url


@click.group()
def db() -> None:
    """Manage the results database schema (BPLAB_DATABASE_URL).

    The embedded SQLite database is upgraded automatically on first use; a PostgreSQL
    database needs `bplab db upgrade` once per bplab release, before the workers start.
    """


@db.command()
@click.argument("revision", default="head")
@click.pass_obj
def upgrade(settings: Settings, revision: str) -> None:
    """Upgrade the schema to REVISION (default: the latest). A no-op when already there."""
    from service.db import migrate
    from service.db.session import make_engine

    engine = make_engine(settings.database_url)
    url = mask_url(settings.database_url)
    try:
        before, after = migrate.upgrade_engine(engine, revision)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"{url}: already at revision {after}, nothing to do")
    else:
        click.echo(f"{url}: upgraded from {before or 'an empty database'} to {after}")


@db.command()
@click.pass_obj
def current(settings: Settings) -> None:
    """Print the schema revision of the database, and whether it is the latest.

    Reads only: a SQLite file that does not exist is reported, not created.
    """
    from service.db import migrate
    from service.db.session import make_engine, make_reader_engine, sqlite_file, stored_revision

    path = sqlite_file(settings.database_url)
    head = migrate.head_revision()
    if path is not None and not path.exists():
        click.echo(f"none (no database at {path} yet; the first `bplab sweep run` creates it)")
        return
    url = settings.database_url
    engine = make_reader_engine(url) if path is not None else make_engine(url)
    try:
        rev = stored_revision(engine)
    finally:
        engine.dispose()
    if rev is None:
        click.echo(f"none (empty database; `bplab db upgrade` creates revision {head})")
    elif rev == head:
        click.echo(f"{rev} (head)")
    else:
        click.echo(f"{rev} (the latest is {head}; run `bplab db upgrade`)")
