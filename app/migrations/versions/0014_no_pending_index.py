"""Event sinks: drop `ix_event_deliveries_pending`. The delivery loop's statements find a
queue's rows through the unique (subscription, execution, seq) index, whatever the table's
statistics say (see app/store/pg_deliveries.py), so nothing reads the partial index any
more, and every delivery written paid for an entry in it.

Revision ID: 0014_no_pending_index
Revises: 0013_delivery_ranges
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_no_pending_index"
down_revision: str | Sequence[str] | None = "0013_delivery_ranges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_event_deliveries_pending", table_name="event_deliveries")


def downgrade() -> None:
    op.create_index(
        "ix_event_deliveries_pending",
        "event_deliveries",
        ["subscription_id", "execution_id", "seq"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
