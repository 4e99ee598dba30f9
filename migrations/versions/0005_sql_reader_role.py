"""PostgreSQL only: the login role `bplab sql` reads as, with SELECT on bplab's objects only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00

Why a role of its own (issue 24): a READ ONLY transaction does not stop a superuser from
COPY ... TO PROGRAM, pg_read_file or pg_terminate_backend, and SET ROLE on a superuser's
session is no barrier either (the statement can set the role back, since that privilege is
checked against the session user). So `bplab sql` logs in as this role instead. It is
NOSUPERUSER, NOCREATEDB, NOCREATEROLE and NOINHERIT, is granted CONNECT on this database,
USAGE on its schema and SELECT on exactly the tables and views below (not alembic_version),
and holds no other role, so none of those functions or COPY to the server is open to it.

- The name comes from BPLAB_SQL_ROLE (default bplab_reader), its password from
  BPLAB_SQL_PASSWORD (default none: it can then log in only where the server trusts it, as
  peer/trust authentication does). The password is set only when this migration creates the
  role; to change it later: ALTER ROLE bplab_reader PASSWORD '...'.
- Roles belong to the whole cluster, and several databases on one server (the test suite's,
  or a team's) migrate at once: CREATE ROLE runs in a savepoint and "already exists" (or the
  unique-index violation a concurrent CREATE ROLE ends with) just means another database's
  migration made it. An existing role is used as it is (an administrator may have made it);
  `bplab sql` checks at every use that it is no superuser.
- A migrating user that may not create roles (the normal case for an application role) gets
  a warning, naming the statements an administrator can run, and the migration goes on. A
  role an administrator made beforehand is granted SELECT here (the migrating user owns the
  tables). Grants it may not make are warnings too.
- A later migration that adds a table or view must grant SELECT on it to the role as well.
- Downgrade revokes this database's grants and keeps the role (other databases may use it):
  drop it with DROP ROLE once no database grants it anything.
"""

import logging
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from service.config import get_settings

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("bplab.migrations")

# bplab's tables and views at this revision: exactly what `bplab sql` may read.
OBJECTS = (
    "sweeps",
    "runs",
    "epoch_metrics",
    "run_weights",
    "checkpoints",
    "run_summary",
    "config_summary",
)

# SQLSTATEs: the role exists already (or was created concurrently: pg_authid's unique index),
# and a privilege the migrating user does not have.
_EXISTS = {"42710", "23505"}
_DENIED = "42501"


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _role_exists(conn: Connection, role: str) -> bool:
    found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    return found.first() is not None


def _create_role(conn: Connection, role: str, password: str | None) -> bool:
    """Create the role unless it exists; False (with a warning) when we may not."""
    if _role_exists(conn, role):
        return True
    may = conn.execute(
        text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not may:
        log.warning(
            "bplab: the database user may not create roles, so `bplab sql`'s read-only role"
            " %r was not created (bplab sql falls back to this user unless it is a"
            " superuser). To create it, as an administrator: CREATE ROLE %s LOGIN NOINHERIT;"
            " GRANT SELECT ON %s TO %s; or set BPLAB_SQL_URL",
            role,
            role,
            ", ".join(OBJECTS),
            role,
        )
        return False
    from psycopg import sql  # the driver renders the literal: CREATE ROLE takes no parameters

    secret = "NULL" if password is None else sql.Literal(password).as_string(_driver(conn))
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(
                f"CREATE ROLE {_quote(conn, role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                f" NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD {secret}"
            )
    except DBAPIError as exc:
        if _sqlstate(exc) not in _EXISTS:
            raise
    return True


def _driver(conn: Connection):  # type: ignore[no-untyped-def]
    return conn.connection.driver_connection


def _grant_each(conn: Connection, statements: list[str], role: str) -> None:
    for statement in statements:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(statement)
        except DBAPIError as exc:
            if _sqlstate(exc) != _DENIED:
                raise
            log.warning("bplab: could not %s (for role %r): %s", statement, role, exc.orig)


def _statements(conn: Connection, role: str, grant: bool) -> list[str]:
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    who, db, sch = _quote(conn, role), _quote(conn, database), _quote(conn, schema)
    objects = ", ".join(_quote(conn, o) for o in OBJECTS)
    verb, to = ("GRANT", "TO") if grant else ("REVOKE", "FROM")
    return [
        f"{verb} CONNECT ON DATABASE {db} {to} {who}",
        f"{verb} USAGE ON SCHEMA {sch} {to} {who}",
        f"{verb} {'SELECT' if grant else 'ALL'} ON {objects} {to} {who}",
    ]


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return  # SQLite: `bplab sql` opens the file read-only; there are no roles
    settings = get_settings()
    if _create_role(conn, settings.sql_role, settings.sql_password):
        _grant_each(conn, _statements(conn, settings.sql_role, grant=True), settings.sql_role)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    role = get_settings().sql_role
    if _role_exists(conn, role):
        _grant_each(conn, _statements(conn, role, grant=False), role)
