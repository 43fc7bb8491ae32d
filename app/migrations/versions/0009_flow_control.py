"""Flow control: the gate's spec, concurrency key and pending reason on executions, and the
rate limits' token buckets.

Revision ID: 0009_flow_control
Revises: 0008_composition
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009_flow_control"
down_revision: str | Sequence[str] | None = "0008_composition"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("flow", JSONType, nullable=True))
        batch.add_column(sa.Column("concurrency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("pending_reason", JSONType, nullable=True))
        batch.create_index("ix_workflow_executions_concurrency", ["concurrency_key", "status"])
    op.create_table(
        "flow_buckets",
        sa.Column("bucket", sa.String(600), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flow_buckets")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_index("ix_workflow_executions_concurrency")
        batch.drop_column("pending_reason")
        batch.drop_column("concurrency_key")
        batch.drop_column("flow")
