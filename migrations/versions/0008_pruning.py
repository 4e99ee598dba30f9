"""Early stopping (issue 15): the 'pruned' run status, what pruned a run, pruned_configs.

Revision ID: 0008_pruning
Revises: 0007_management
Create Date: 2026-12-03 10:00:00

- runs.status may be 'pruned' (the CHECK constraint is widened).
- runs.pruned_epoch, pruned_value, pruned_threshold: where a pruned run stopped, its metric
  value there and the threshold it missed; runs.prune_exempt: `sweep retry --pruned` trains
  such a run to the end.
- pruned_configs: one row per (sweep, configuration) that a rule stopped with unit: config
  (first decision wins), so that every worker stops the other seeds of it.
- run_summary and config_summary (0004) are recreated with the pruned columns and count.

SQLite: the CHECK constraint lives in the table's CREATE statement, and the usual rebuild
(batch mode: copy into a new table, drop the old one) would, with foreign keys on, delete
every epoch row, weight and checkpoint through ON DELETE CASCADE when the old table is
dropped; foreign keys cannot be switched off inside the migration's transaction. Widening
an IN list changes no stored byte, which is the case SQLite documents for editing the
schema text in place (https://sqlite.org/lang_altertable.html, "otherwise" procedure):
that is what _sqlite_check does. The views are dropped first and recreated all the same,
so that both databases end with the same view definitions.

PostgreSQL: the constraint is dropped and added again; the reader role of 0005 gets SELECT
on the new table and, again, on the recreated views.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from service.config import get_settings

revision: str = "0008_pruning"
down_revision: str | None = "0007_management"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("bplab.migrations")

OLD = ("queued", "running", "succeeded", "diverged", "failed", "cancelled")
NEW = (*OLD, "pruned")
READABLE = ("pruned_configs", "run_summary", "config_summary")
_DENIED = "42501"  # SQLSTATE: insufficient privilege

PARAMS = (
    "learning_rate",
    "momentum",
    "hidden",
    "cost",
    "activation",
    "output_activation",
    "optimizer",
    "batch_size",
    "weight_decay",
    "init",
    "epochs",
    "dataset",
)
_params = ", ".join(f"r.{p}" for p in PARAMS)
_finished = "r.status IN ('succeeded', 'diverged')"
_decided = "r.status NOT IN ('queued', 'running')"


def _run_summary(pruned: bool) -> str:
    extra = ", r.pruned_epoch, r.pruned_value, r.pruned_threshold" if pruned else ""
    return f"""
CREATE VIEW run_summary AS
SELECT r.id AS run_id, r.sweep_id, s.name AS sweep_name, r.status, r.seed, {_params},
       r.epochs_run, r.final_loss, r.best_loss, r.accuracy, r.val_loss, r.solved_epoch,
       r.wall_time_s, r.config_key{extra}
FROM runs r JOIN sweeps s ON s.id = r.sweep_id
"""


def _config_summary(pruned: bool) -> str:
    # n_pruned goes last so that a query reading 0004's columns by position still works.
    extra = (
        ",\n       SUM(CASE WHEN r.status = 'pruned' THEN 1 ELSE 0 END) AS n_pruned"
        if pruned
        else ""
    )
    return f"""
CREATE VIEW config_summary AS
SELECT r.sweep_id, r.config_key, {_params},
       COUNT(*) AS n_runs,
       SUM(CASE WHEN r.status = 'succeeded' THEN 1 ELSE 0 END) AS n_succeeded,
       SUM(CASE WHEN r.status = 'diverged' THEN 1 ELSE 0 END) AS n_diverged,
       SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END) AS n_failed,
       SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END) AS n_cancelled,
       SUM(CASE WHEN r.status IN ('queued', 'running') THEN 1 ELSE 0 END) AS n_pending,
       AVG(CASE WHEN {_finished} THEN NULLIF(r.final_loss, 'NaN') END) AS avg_final_loss,
       MIN(CASE WHEN {_finished} THEN NULLIF(r.best_loss, 'NaN') END) AS min_best_loss,
       AVG(CASE WHEN {_finished} THEN NULLIF(r.accuracy, 'NaN') END) AS avg_accuracy,
       COUNT(r.solved_epoch) AS n_solved,
       CAST(COUNT(r.solved_epoch) AS DOUBLE PRECISION)
           / NULLIF(SUM(CASE WHEN {_decided} THEN 1 ELSE 0 END), 0) AS success_rate,
       AVG(CAST(r.solved_epoch AS DOUBLE PRECISION)) AS avg_solved_epoch{extra}
FROM runs r
GROUP BY r.sweep_id, r.config_key, {_params}
"""


def _check(statuses: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{s}'" for s in statuses))


def upgrade() -> None:
    _drop_views()
    _status_check(OLD, NEW)
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.add_column(sa.Column("pruned_epoch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pruned_value", sa.Double(), nullable=True))
        batch.add_column(sa.Column("pruned_threshold", sa.Double(), nullable=True))
        batch.add_column(
            sa.Column("prune_exempt", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "pruned_configs",
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("config_key", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_pruned_configs_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sweep_id", "config_key", name=op.f("pk_pruned_configs")),
    )
    op.execute(_run_summary(pruned=True))
    op.execute(_config_summary(pruned=True))
    _grant(READABLE, grant=True)


def downgrade() -> None:
    _grant(READABLE, grant=False)
    _drop_views()
    # The old schema has no 'pruned': such a run is what a cancel leaves (a curve cut short,
    # `sweep retry --cancelled` trains it again).
    op.execute("UPDATE runs SET status = 'cancelled' WHERE status = 'pruned'")
    op.drop_table("pruned_configs")
    for column in ("prune_exempt", "pruned_threshold", "pruned_value", "pruned_epoch"):
        op.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    _status_check(NEW, OLD)
    op.execute(_run_summary(pruned=False))
    op.execute(_config_summary(pruned=False))
    _grant(("run_summary", "config_summary"), grant=True)  # as 0005 left them


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS config_summary")
    op.execute("DROP VIEW IF EXISTS run_summary")


def _status_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_runs_status"), "runs", type_="check")
        op.create_check_constraint(op.f("ck_runs_status"), "runs", _check(new))
        return
    _sqlite_check(conn, _check(old), _check(new))


def _sqlite_check(conn: sa.Connection, old: str, new: str) -> None:
    """Replace the CHECK text in runs' stored CREATE TABLE (see the module docstring)."""
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
    ).scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"runs: expected the constraint {old!r} once in {sql!r}")
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'runs'",
            (sql.replace(old, new),),
        )
        # A new schema version makes every connection, this one included, read it again.
        conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def _grant(objects: tuple[str, ...], *, grant: bool) -> None:
    """SELECT for 0005's reader role on the new table and the recreated views (PostgreSQL,
    when the role exists): a dropped view loses its grants."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    role = get_settings().sql_role
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists.first() is None:
        return  # 0005 warned already; an administrator who makes the role grants it too
    quote = conn.dialect.identifier_preparer.quote_identifier
    names = ", ".join(quote(t) for t in objects)
    statement = (
        f"GRANT SELECT ON {names} TO {quote(role)}"
        if grant
        else f"REVOKE ALL ON {names} FROM {quote(role)}"
    )
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _DENIED:
            raise
        log.warning("bplab: could not %s: %s", statement, exc.orig)
