"""Initial schema: sweeps, runs, epoch_metrics, run_weights, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 14:46:10.432379
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_sweeps()
    _create_runs()
    _create_run_data()


def _create_sweeps() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dataset", sa.String(length=500), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("swept", sa.JSON(), nullable=False),
        sa.Column("n_runs", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )


def _create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_key", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=500), nullable=False),
        sa.Column("learning_rate", sa.Double(), nullable=False),
        sa.Column("momentum", sa.Double(), nullable=False),
        sa.Column("hidden", sa.String(length=200), nullable=False),
        sa.Column("cost", sa.String(length=40), nullable=False),
        sa.Column("activation", sa.String(length=40), nullable=False),
        sa.Column("output_activation", sa.String(length=40), nullable=False),
        sa.Column("optimizer", sa.String(length=40), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("weight_decay", sa.Double(), nullable=False),
        sa.Column("init", sa.String(length=40), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=True),
        sa.Column("final_loss", sa.Double(), nullable=True),
        sa.Column("best_loss", sa.Double(), nullable=True),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("solved_epoch", sa.Integer(), nullable=True),
        sa.Column("wall_time_s", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'diverged', 'failed', 'cancelled')",
            name=op.f("ck_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_runs_sweep_id_sweeps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_activation"), "runs", ["activation"])
    op.create_index(op.f("ix_runs_batch_size"), "runs", ["batch_size"])
    op.create_index(op.f("ix_runs_config_key"), "runs", ["config_key"])
    op.create_index(op.f("ix_runs_cost"), "runs", ["cost"])
    op.create_index(op.f("ix_runs_dataset"), "runs", ["dataset"])
    op.create_index(op.f("ix_runs_epochs"), "runs", ["epochs"])
    op.create_index(op.f("ix_runs_hidden"), "runs", ["hidden"])
    op.create_index(op.f("ix_runs_init"), "runs", ["init"])
    op.create_index(op.f("ix_runs_learning_rate"), "runs", ["learning_rate"])
    op.create_index(op.f("ix_runs_momentum"), "runs", ["momentum"])
    op.create_index(op.f("ix_runs_optimizer"), "runs", ["optimizer"])
    op.create_index(op.f("ix_runs_output_activation"), "runs", ["output_activation"])
    op.create_index(op.f("ix_runs_sweep_id_status"), "runs", ["sweep_id", "status"])
    op.create_index(op.f("ix_runs_weight_decay"), "runs", ["weight_decay"])


def _create_run_data() -> None:
    """What a run leaves behind: its checkpoint, its epoch rows, its final weights."""
    op.create_table(
        "checkpoints",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_checkpoints_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "epoch_metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Double(), nullable=True),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("val_loss", sa.Double(), nullable=True),
        sa.Column("val_accuracy", sa.Double(), nullable=True),
        sa.Column("max_error", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_epoch_metrics_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "epoch", name=op.f("pk_epoch_metrics")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_weights",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("shapes", sa.JSON(), nullable=False),
        sa.Column("dtype", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_weights_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_weights")),
    )


def downgrade() -> None:
    op.drop_table("run_weights")
    op.drop_table("epoch_metrics")
    op.drop_table("checkpoints")
    op.drop_index(op.f("ix_runs_weight_decay"), table_name="runs")
    op.drop_index(op.f("ix_runs_sweep_id_status"), table_name="runs")
    op.drop_index(op.f("ix_runs_output_activation"), table_name="runs")
    op.drop_index(op.f("ix_runs_optimizer"), table_name="runs")
    op.drop_index(op.f("ix_runs_momentum"), table_name="runs")
    op.drop_index(op.f("ix_runs_learning_rate"), table_name="runs")
    op.drop_index(op.f("ix_runs_init"), table_name="runs")
    op.drop_index(op.f("ix_runs_hidden"), table_name="runs")
    op.drop_index(op.f("ix_runs_epochs"), table_name="runs")
    op.drop_index(op.f("ix_runs_dataset"), table_name="runs")
    op.drop_index(op.f("ix_runs_cost"), table_name="runs")
    op.drop_index(op.f("ix_runs_config_key"), table_name="runs")
    op.drop_index(op.f("ix_runs_batch_size"), table_name="runs")
    op.drop_index(op.f("ix_runs_activation"), table_name="runs")

    op.drop_table("runs")
    op.drop_table("sweeps")
