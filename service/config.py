"""One settings object, read from the environment, shared by the CLI, the worker and Alembic."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///bplab.db"
DEFAULT_SQL_ROLE = "bplab_reader"


@dataclass(frozen=True)
class Settings:
    """Where results live and where tasks go.

    ``broker_url`` None means: no servers, run sweeps in a local process pool.
    """

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    # `bplab sql` on PostgreSQL (issue 24): the login role it reads as, created by migration
    # 0005 with SELECT on bplab's tables and views only (BPLAB_SQL_ROLE, default bplab_reader);
    # that role's password, for servers that ask for one (BPLAB_SQL_PASSWORD, default none);
    # a complete URL to use instead of the database URL with that role (BPLAB_SQL_URL).
    sql_role: str = DEFAULT_SQL_ROLE
    sql_password: str | None = None
    sql_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("BPLAB_DATABASE_URL") or DEFAULT_DATABASE_URL,
            broker_url=os.environ.get("BPLAB_BROKER_URL") or None,
            sql_role=os.environ.get("BPLAB_SQL_ROLE") or DEFAULT_SQL_ROLE,
            sql_password=os.environ.get("BPLAB_SQL_PASSWORD") or None,
            sql_url=os.environ.get("BPLAB_SQL_URL") or None,
        )

    @property
    def distributed(self) -> bool:
        return self.broker_url is not None


def get_settings() -> Settings:
    """The settings as the environment gives them now (read afresh: tests change the env)."""
    return Settings.from_env()


def mask_url(url: str | None) -> str:
    """A URL safe to print or log: any password replaced by ***."""
    if not url:
        return ""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (e.g. a broker URL with odd syntax)
        return _mask_generic(url)


def _mask_generic(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _password = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
