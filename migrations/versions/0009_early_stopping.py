"""Per-run early stopping (issue 15 item 3): where a run's best epoch was, where patience
stopped it.

Revision ID: 0009_early_stopping
Revises: 0008_pruning
Create Date: 2026-12-03 13:00:00

- runs.best_epoch: the epoch of the best monitored value (val_loss, else loss) of a run with
  patience or restore_best (with restore_best its final weights and summary are that
  epoch's); runs.stopped_epoch: the epoch at which patience stopped it (NULL when it was not
  stopped so; such a run ends 'succeeded', like Keras's EarlyStopping).
- run_summary gets both columns at its end, config_summary n_stopped (runs stopped by
  patience) at its end, so that queries reading 0008's columns by position still work.

Nullable columns are added in place on both databases (no table rebuild, see 0008 on why a
rebuild of runs would be harmful on SQLite); the views are dropped and recreated, and on
PostgreSQL the reader role of 0005 gets SELECT on them again.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from service.config import get_settings

revision: str = "0009_early_stopping"
down_revision: str | None = "0008_pruning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("bplab.migrations")

VIEWS = ("run_summary", "config_summary")
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


def _run_summary(stopped: bool) -> str:
    extra = ", r.best_epoch, r.stopped_epoch" if stopped else ""
    return f"""
CREATE VIEW run_summary AS
SELECT r.id AS run_id, r.sweep_id, s.name AS sweep_name, r.status, r.seed, {_params},
       r.epochs_run, r.final_loss, r.best_loss, r.accuracy, r.val_loss, r.solved_epoch,
       r.wall_time_s, r.config_key, r.pruned_epoch, r.pruned_value, r.pruned_threshold{extra}
FROM runs r JOIN sweeps s ON s.id = r.sweep_id
"""


def _config_summary(stopped: bool) -> str:
    extra = ",\n       COUNT(r.stopped_epoch) AS n_stopped" if stopped else ""
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
       AVG(CAST(r.solved_epoch AS DOUBLE PRECISION)) AS avg_solved_epoch,
       SUM(CASE WHEN r.status = 'pruned' THEN 1 ELSE 0 END) AS n_pruned{extra}
FROM runs r
GROUP BY r.sweep_id, r.config_key, {_params}
"""


def upgrade() -> None:
    _drop_views()
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stopped_epoch", sa.Integer(), nullable=True))
    op.execute(_run_summary(stopped=True))
    op.execute(_config_summary(stopped=True))
    _grant()


def downgrade() -> None:
    _drop_views()
    for column in ("stopped_epoch", "best_epoch"):
        op.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    op.execute(_run_summary(stopped=False))
    op.execute(_config_summary(stopped=False))
    _grant()


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS config_summary")
    op.execute("DROP VIEW IF EXISTS run_summary")


def _grant() -> None:
    """SELECT for 0005's reader role on the recreated views (PostgreSQL, when the role
    exists): a dropped view loses its grants."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    role = get_settings().sql_role
    exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists.first() is None:
        return  # 0005 warned already; an administrator who makes the role grants it too
    quote = conn.dialect.identifier_preparer.quote_identifier
    statement = f"GRANT SELECT ON {', '.join(VIEWS)} TO {quote(role)}"
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _DENIED:
            raise
        log.warning("bplab: could not %s: %s", statement, exc.orig)
