"""Model-based search: search_trials (what the sampler asked, in order) and search_leases.

Revision ID: 0006_search
Revises: 0005
Create Date: 2026-12-05 10:00:00

Nothing of a sampler is stored: a driver rebuilds its Optuna study from search_trials and
the runs' results (service.search). search_leases holds one row per sweep: the driver that
may ask and record configurations, fenced by its token.

As 0005 asks of every later migration, PostgreSQL's read-only role (BPLAB_SQL_ROLE) is
granted SELECT on the new tables, when it exists and the migrating user may grant; otherwise
a warning says what an administrator can run, and the migration goes on.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from service.config import get_settings

revision: str = "0006_search"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("bplab.migrations")

TABLES = ("search_trials", "search_leases")
_DENIED = "42501"  # SQLSTATE: insufficient privilege


def upgrade() -> None:
    op.create_table(
        "search_trials",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("config_key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("first_number", sa.Integer(), nullable=True),
        sa.Column("asked_after", sa.Integer(), nullable=False),
        sa.Column("told_seq", sa.Integer(), nullable=True),
        sa.Column("lease_token", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_search_trials_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", "number", name=op.f("pk_search_trials")),
    )
    # One set of runs per configuration and sweep: only the trial that recorded them has
    # first_number NULL, and two of those for one configuration cannot exist.
    op.create_index(
        "uq_search_trials_sweep_id_config_key",
        "search_trials",
        ["sweep_id", "config_key"],
        unique=True,
        sqlite_where=sa.text("first_number IS NULL"),
        postgresql_where=sa.text("first_number IS NULL"),
    )
    op.create_table(
        "search_leases",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_search_leases_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", name=op.f("pk_search_leases")),
    )
    _grant(grant=True)


def downgrade() -> None:
    _grant(grant=False)
    op.drop_table("search_leases")
    op.drop_index("uq_search_trials_sweep_id_config_key", table_name="search_trials")
    op.drop_table("search_trials")


def _grant(*, grant: bool) -> None:
    """SELECT for 0005's reader role on the new tables (PostgreSQL, when the role exists)."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    role = get_settings().sql_role
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists.first() is None:
        return  # 0005 warned already; an administrator who makes the role grants it too
    quote = conn.dialect.identifier_preparer.quote_identifier
    tables = ", ".join(quote(t) for t in TABLES)
    statement = (
        f"GRANT SELECT ON {tables} TO {quote(role)}"
        if grant
        else f"REVOKE ALL ON {tables} FROM {quote(role)}"
    )
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _DENIED:
            raise
        log.warning("bplab: could not %s: %s", statement, exc.orig)
