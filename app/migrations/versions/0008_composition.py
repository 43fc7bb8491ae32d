"""Composition: the parent link of child executions, and the events table.

Revision ID: 0008_composition
Revises: 0007_schedules
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008_composition"
down_revision: str | Sequence[str] | None = "0007_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("parent_execution_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("parent_step_key", sa.String(300), nullable=True))
        batch.add_column(sa.Column("parent_attempt", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("child_depth", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_workflow_executions_parent", ["parent_execution_id"])
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data", JSONType, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.UniqueConstraint("namespace", "event_id", name="uq_events_namespace_event_id"),
    )
    op.create_index("ix_events_name_received", "events", ["namespace", "name", "received_at"])
    op.create_table(
        "event_waits",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(300), nullable=False),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "step_key", name="pk_event_waits"),
    )
    op.create_index("ix_event_waits_name", "event_waits", ["namespace", "name"])


def downgrade() -> None:
    op.drop_index("ix_event_waits_name", table_name="event_waits")
    op.drop_table("event_waits")
    op.drop_index("ix_events_name_received", table_name="events")
    op.drop_table("events")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_index("ix_workflow_executions_parent")
        batch.drop_column("child_depth")
        batch.drop_column("parent_attempt")
        batch.drop_column("parent_step_key")
        batch.drop_column("parent_execution_id")
