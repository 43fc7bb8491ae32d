"""Drop the columns nothing reads: `workflow_executions.enqueued_at`, `workflows.stats`.

Revision ID: 0003_drop_unread
Revises: 0002_recoveries
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_drop_unread"
down_revision: str | Sequence[str] | None = "0002_recoveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("enqueued_at")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("stats")


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(
            sa.Column(
                "stats", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            )
        )
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
