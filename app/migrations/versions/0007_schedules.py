"""Schedules, and the (schedule, slot) that started an execution (unique: one fire each).

Revision ID: 0007_schedules
Revises: 0006_security
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_schedules"
down_revision: str | Sequence[str] | None = "0006_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("workflow_version", sa.String(100), nullable=True),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("every_ms", sa.BigInteger(), nullable=True),
        sa.Column("input", JSONType, nullable=False),
        sa.Column("mode", sa.String(20), nullable=False, server_default="auto"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tags", JSONType, nullable=False, server_default="[]"),
        sa.Column("overlap", sa.String(20), nullable=False, server_default="skip"),
        sa.Column("catchup_window_ms", sa.BigInteger(), nullable=False),
        sa.Column("jitter_ms", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("next_slot", TS, nullable=False),
        sa.Column("buffered_slot", TS, nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("fired", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_slot", TS, nullable=True),
        sa.Column("last_error", JSONType, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "(cron IS NULL) <> (every_ms IS NULL)", name="ck_schedules_one_calendar"
        ),
    )
    op.create_index("ix_schedules_due", "schedules", ["paused", "next_slot"])
    op.create_index("ix_schedules_namespace", "schedules", ["namespace", "created_at"])
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("schedule_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("schedule_slot", TS, nullable=True))
        batch.create_unique_constraint(
            "uq_workflow_executions_schedule_slot", ["schedule_id", "schedule_slot"]
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_constraint("uq_workflow_executions_schedule_slot", type_="unique")
        batch.drop_column("schedule_slot")
        batch.drop_column("schedule_id")
    op.drop_index("ix_schedules_namespace", table_name="schedules")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
