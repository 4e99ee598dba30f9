"""One settings object, read from the environment, shared by the CLI, the worker and Alembic."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

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
    """A URL safe to print or log: every credential it can carry replaced by ***.

    That is the password of the userinfo (``user:secret@host``) and the value of every query
    parameter that names a credential (``?password=``, ``sslpassword``, ``token``, ...):
    PostgreSQL (libpq) and Redis both take a password from the query string, so masking only
    the userinfo, as SQLAlchemy's ``hide_password`` does, printed such passwords in clear.
    Works on any scheme (database and broker URLs alike) and leaves the rest as written.
    """
    if not url:
        return ""
    head, sep, fragment = url.partition("#")
    head, qmark, query = head.partition("?")
    scheme, colon_slashes, rest = head.partition("://")
    if colon_slashes:
        authority, slash, path = rest.partition("/")
        creds, at, host = authority.rpartition("@")
        if at:
            user, colon, _password = creds.partition(":")
            authority = f"{user}{':***' if colon else ''}@{host}"
        head = f"{scheme}://{authority}{slash}{path}"
    if qmark:
        query = "&".join(_mask_parameter(item) for item in query.split("&"))
    return f"{head}{qmark}{query}{sep}{fragment}"


# Query parameter names that carry a secret (matched anywhere in the lowercased name).
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential")


def _mask_parameter(item: str) -> str:
    name, eq, value = item.partition("=")
    if eq and value and _SECRET_PARAMETER.search(unquote_plus(name).lower()):
        return f"{name}=***"
    return item
