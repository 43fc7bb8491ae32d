"""Event sinks: a leaner outbox. The due index holds pending deliveries only (a delivered
one leaves it, and adds no entry to it), and on Postgres the table's pages keep room so
that a lease's update stays on its page (a HOT update: no new index entries).

Revision ID: 0012_lean_outbox
Revises: 0011_sink_batches
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_lean_outbox"
down_revision: str | Sequence[str] | None = "0011_sink_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["next_attempt_at", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE event_deliveries SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE event_deliveries RESET (fillfactor)")
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["status", "next_attempt_at"])
