"""Observability: the trace context an execution was created in (W3C `traceparent`), so a
worker's spans continue the API's trace; what its steps cost, summed when it comes to rest
(read by the analytics without touching the steps).

Revision ID: 0004_observability
Revises: 0002_recoveries (re-chain onto the latest revision at merge)
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_observability"
down_revision: str | Sequence[str] | None = "0003_drop_unread"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("step_retries", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("cpu_ms", sa.Float(), nullable=True))
        batch.add_column(sa.Column("bytes_sent", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("bytes_received", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        for column in ("bytes_received", "bytes_sent", "cpu_ms", "step_retries", "trace_context"):
            batch.drop_column(column)
