"""Alembic environment for bplab.

The database URL comes, in this order, from a connection or URL passed in by code
(service.db.migrate), from ``alembic -x url=...``, or from the one settings object
(service.config: BPLAB_DATABASE_URL, else a bplab.toml's database_url, else
sqlite:///bplab.db), so migrations, the CLI and the worker always agree on the database.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from service.config import get_settings
from service.db.models import Base
from service.db.types import SafeFloat, UTCDateTime

config = context.config
if config.config_file_name is not None:  # the `alembic` command line; never when called from code
    fileConfig(config.config_file_name)
target_metadata = Base.metadata


def _url() -> str:
    return (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or get_settings().database_url
    )


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Revisions must not import the models (they change; a revision must not), so our
    # Python-side types are written as the plain column types they store as.
    if type_ == "type" and isinstance(obj, SafeFloat):
        return "sa.Double()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        render_item=_render_item,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from service.db.session import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
