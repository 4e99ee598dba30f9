"""Reliability: runs.queued_at (lost-message grace period) and runs.retry_base (attempt bound).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (no table copy on SQLite): queued_at has no server default, since
    # SQLite cannot add a column defaulting to the current time; NULL means "since created_at".
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("retry_base", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("retry_base")
        batch_op.drop_column("queued_at")
