"""Security: API keys, dashboard sessions, the audit log, secrets, and namespaces
(existing workflows and executions go to `default`).

Revision ID: 0003_security
Revises: 0002_recoveries
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006_security"
down_revision: str | Sequence[str] | None = "0005_analytics_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hint", sa.String(12), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "api_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_api_sessions_key", "api_sessions", ["key_id"])
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("details", JSONType, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    op.create_table(
        "secrets",
        sa.Column("namespace", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name="pk_secrets"),
    )
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(
            sa.Column("namespace", sa.String(100), nullable=False, server_default="default")
        )
        batch.create_index("ix_workflow_executions_namespace", ["namespace", "created_at"])
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(
            sa.Column("namespace", sa.String(100), nullable=False, server_default="default")
        )
        batch.drop_constraint("uq_workflows_name_version", type_="unique")
        batch.create_unique_constraint(
            "uq_workflows_namespace_name_version", ["namespace", "name", "version"]
        )


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_constraint("uq_workflows_namespace_name_version", type_="unique")
        batch.create_unique_constraint("uq_workflows_name_version", ["name", "version"])
        batch.drop_column("namespace")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_index("ix_workflow_executions_namespace")
        batch.drop_column("namespace")
    op.drop_table("secrets")
    op.drop_table("audit_log")
    op.drop_table("api_sessions")
    op.drop_table("api_keys")
