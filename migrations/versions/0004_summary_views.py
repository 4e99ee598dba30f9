"""Views for plain SQL: run_summary (one row per run) and config_summary (per configuration).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 15:20:00

(Written at the same time as 0003 and placed after it, so the history stays one line.)

The SQL is written once and runs unchanged on SQLite and PostgreSQL:
- SafeFloat stores NaN as the text 'NaN' on SQLite, which SUM/AVG would read as 0, while
  PostgreSQL's AVG over a NaN is NaN. ``NULLIF(x, 'NaN')`` is NULL for a NaN on both (on
  PostgreSQL 'NaN' is cast to double and NaN = NaN is true there; on SQLite the stored text
  equals the literal), so every aggregate below skips NaN on both databases alike.
- Averages cast to DOUBLE PRECISION first: AVG(integer) is numeric on PostgreSQL and the
  success rate would be an integer division on both without it.

Views are not in the models' metadata, and Alembic's autogenerate only compares tables, so
`alembic check` neither sees nor wants to drop them. A later migration that rebuilds the
runs or sweeps table with SQLite's batch mode must drop these views first and recreate them
afterwards (SQLite refuses to rename a table that a view refers to).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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

RUN_SUMMARY = f"""
CREATE VIEW run_summary AS
SELECT r.id AS run_id, r.sweep_id, s.name AS sweep_name, r.status, r.seed, {_params},
       r.epochs_run, r.final_loss, r.best_loss, r.accuracy, r.val_loss, r.solved_epoch,
       r.wall_time_s, r.config_key
FROM runs r JOIN sweeps s ON s.id = r.sweep_id
"""

CONFIG_SUMMARY = f"""
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
       AVG(CAST(r.solved_epoch AS DOUBLE PRECISION)) AS avg_solved_epoch
FROM runs r
GROUP BY r.sweep_id, r.config_key, {_params}
"""


def upgrade() -> None:
    op.execute(RUN_SUMMARY)
    op.execute(CONFIG_SUMMARY)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS config_summary")
    op.execute("DROP VIEW IF EXISTS run_summary")
