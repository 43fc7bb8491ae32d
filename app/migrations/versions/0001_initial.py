"""Initial schema: executions, their steps and events, and the workflow registry.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types in app/store/tables.py: a migration must not change when the
# application's code does.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("execution_mode", sa.String(20), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False, server_default="{}"),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("workflow_version", sa.String(100), nullable=True),
        sa.Column("requested_mode", sa.String(20), nullable=False, server_default="auto"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("input", JSON, nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("complexity", JSON, nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tags", JSON, nullable=False, server_default="[]"),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("timeout_ms", sa.BigInteger(), nullable=True),
        sa.Column("elapsed_ms", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("control_action", sa.String(20), nullable=True),
        sa.Column("wake_at", TIMESTAMP, nullable=True),
        sa.Column("enqueued_at", TIMESTAMP, nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("progress_done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("progress_total", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id"),
        # Named, unlike in tables.py, so that a later batch migration on SQLite can refer to it.
        sa.UniqueConstraint("idempotency_key", name="uq_workflow_executions_idempotency_key"),
        sa.CheckConstraint(
            "status IN ('pending','running','paused','waiting','completed','failed','cancelled')",
            name="ck_workflow_executions_status",
        ),
        sa.CheckConstraint(
            "execution_mode IN ('immediate','queued')", name="ck_workflow_executions_mode"
        ),
    )
    op.create_index("ix_workflow_executions_created", "workflow_executions", ["created_at", "id"])
    op.create_index(
        "ix_workflow_executions_status", "workflow_executions", ["status", "lease_expires_at"]
    )
    op.create_index(
        "ix_workflow_executions_workflow", "workflow_executions", ["workflow_name", "created_at"]
    )

    op.create_table(
        "execution_steps",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_key", sa.String(300), nullable=False),
        sa.Column("node_id", sa.String(200), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("state", JSON, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "step_key", name="pk_execution_steps"),
    )

    op.create_table(
        "execution_events",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "seq", name="pk_execution_events"),
    )

    op.create_table(
        "workflows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("stats", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_workflows_name_version"),
    )
    op.create_index("ix_workflows_name_created", "workflows", ["name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_workflows_name_created", table_name="workflows")
    op.drop_table("workflows")
    op.drop_table("execution_events")
    op.drop_table("execution_steps")
    op.drop_index("ix_workflow_executions_workflow", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_status", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_created", table_name="workflow_executions")
    op.drop_table("workflow_executions")
