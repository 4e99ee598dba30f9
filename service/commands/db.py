"""``bplab db``: bring the results database's schema up to date, or show its revision."""

from __future__ import annotations

import click

from service.config import Settings, mask_url


@click.group()
def db() -> None:
    """Manage the results database schema (BPLAB_DATABASE_URL).

    The embedded SQLite database is upgraded automatically on first use; a PostgreSQL
    database needs `bplab db upgrade` once per bplab release, before the workers start.
    """


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from service.db.session import make_engine

    try:
        return make_engine(settings.database_url)
    except Exception as exc:  # a malformed URL or a missing driver
        raise click.ClickException(
            f"cannot open database {mask_url(settings.database_url)}: {exc}"
        ) from exc


@db.command()
@click.argument("revision", default="head")
@click.pass_obj
def upgrade(settings: Settings, revision: str) -> None:
    """Upgrade the schema to REVISION (default: the latest). A no-op when already there."""
    from sqlalchemy.exc import OperationalError

    from service.db import migrate

    engine = _engine(settings)
    url = mask_url(settings.database_url)
    try:
        before, after = migrate.upgrade_engine(engine, revision)
    except OperationalError as exc:
        raise click.ClickException(f"cannot reach database {url}: {exc.orig}") from exc
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"{url}: already at revision {after}, nothing to do")
    else:
        click.echo(f"{url}: upgraded from {before or 'an empty database'} to {after}")


@db.command()
@click.pass_obj
def current(settings: Settings) -> None:
    """Print the schema revision of the database, and whether it is the latest."""
    from sqlalchemy.exc import OperationalError

    from service.db import migrate

    engine = _engine(settings)
    try:
        rev = migrate.current_revision_of(engine)
    except OperationalError as exc:
        raise click.ClickException(
            f"cannot reach database {mask_url(settings.database_url)}: {exc.orig}"
        ) from exc
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if rev is None:
        click.echo(f"none (empty database; `bplab db upgrade` creates revision {head})")
    elif rev == head:
        click.echo(f"{rev} (head)")
    else:
        click.echo(f"{rev} (the latest is {head}; run `bplab db upgrade`)")
