"""Event sinks: a subscription's batch size (events per webhook POST or stream pipeline).

Revision ID: 0011_sink_batches
Revises: 0010_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_sink_batches"
down_revision: str | Sequence[str] | None = "0010_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("batch_size", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("batch_size")
