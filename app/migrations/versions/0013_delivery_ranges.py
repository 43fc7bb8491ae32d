"""Event sinks: one delivery row per subscription and commit. A row carries the events
`seq` .. `last_seq` that one commit of an execution made and the subscription takes (a run
of consecutive events), instead of one row per event: a 3-step run's nine events take
three rows to write, lease and record, not nine. Rows written before have `last_seq` NULL
(one event, `seq`).

Revision ID: 0013_delivery_ranges
Revises: 0012_lean_outbox
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_delivery_ranges"
down_revision: str | Sequence[str] | None = "0012_lean_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_deliveries", sa.Column("last_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_deliveries") as batch:
        batch.drop_column("last_seq")
