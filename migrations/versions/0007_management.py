"""Managing sweeps (issue 19): notes, tags, the data file's hash, one run per cell.

Revision ID: 0007_management
Revises: 0006_search
Create Date: 2026-12-05 12:00:00

- sweeps.note: free text (`bplab sweep note`).
- sweeps.data_sha256: the sha256 of a csv:/npz: dataset's bytes when the sweep was recorded;
  extend, resume and retry refuse to train more runs once the file has changed.
- sweep_tags: key -> value labels of a sweep (`bplab sweep tag`), one row per key, so that
  `sweep list --tag k=v` is an indexed SQL filter on both databases (a JSON column would need
  a different operator on each).
- checkpoints of runs that have ended are deleted (from now on, where the run ends).
- uq_runs_sweep_id_config_key_seed: a sweep holds each (configuration, seed) cell once.
  Submission already expanded distinct cells; `sweep extend` adds only missing ones, and the
  index makes a second copy impossible even when two extends race.

As 0005 asks of every later migration, PostgreSQL's read-only role (BPLAB_SQL_ROLE) is
granted SELECT on the new table when it exists and the migrating user may grant; otherwise a
warning, and the migration goes on.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from service.config import get_settings

revision: str = "0007_management"
down_revision: str | None = "0006_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("bplab.migrations")

TABLES = ("sweep_tags",)
_DENIED = "42501"  # SQLSTATE: insufficient privilege


def upgrade() -> None:
    op.add_column("sweeps", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("sweeps", sa.Column("data_sha256", sa.String(length=64), nullable=True))
    op.create_table(
        "sweep_tags",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_sweep_tags_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", "key", name=op.f("pk_sweep_tags")),
    )
    op.create_index(op.f("ix_sweep_tags_key_value"), "sweep_tags", ["key", "value"])
    op.create_index(
        op.f("uq_runs_sweep_id_config_key_seed"),
        "runs",
        ["sweep_id", "config_key", "seed"],
        unique=True,
    )
    # Checkpoints of runs that have ended were kept until now; a finished run never resumes
    # (a retry starts from epoch 0), so they only took room. From here on the finishing
    # transaction deletes them (service.db.attempts.drop_finished_checkpoints).
    op.execute(
        "DELETE FROM checkpoints WHERE run_id IN (SELECT id FROM runs WHERE status IN "
        "('succeeded', 'diverged', 'failed', 'cancelled'))"
    )
    _grant(grant=True)


def downgrade() -> None:
    _grant(grant=False)
    op.drop_index(op.f("uq_runs_sweep_id_config_key_seed"), table_name="runs")
    op.drop_index(op.f("ix_sweep_tags_key_value"), table_name="sweep_tags")
    op.drop_table("sweep_tags")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): batch mode would rebuild sweeps,
    # which SQLite refuses while the run_summary view refers to it.
    for column in ("data_sha256", "note"):
        op.execute(f"ALTER TABLE sweeps DROP COLUMN {column}")


def _grant(*, grant: bool) -> None:
    """SELECT for 0005's reader role on the new table (PostgreSQL, when the role exists)."""
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
