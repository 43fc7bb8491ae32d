"""Event sinks: one delivery row per subscription and commit. A row carries the events
`seq` .. `last_seq` that one commit of an execution made and the subscription takes (a run
of consecutive events), instead of one row per event: a 3-step run's nine events take
three rows to write, lease and record, not nine. Rows written before have `last_seq` NULL
(one event, `seq`).

Stop every process that delivers (workers, `turnout serve` without Redis) before applying it:
one of an earlier version would send a row's first event only and record the row as
delivered. The downgrade splits each row back into one per event.

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
    # One row per event again: each event after a row's first gets a row of its own, with
    # the row's status and attempts (nothing pending is lost with the column).
    op.execute(
        """INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type, status,
                                    attempts, next_attempt_at, last_status, last_error,
                                    created_at, delivered_at)
SELECT d.subscription_id, d.execution_id, ev.seq, ev.type, d.status, d.attempts,
       d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at
FROM event_deliveries d JOIN execution_events ev
  ON ev.execution_id = d.execution_id AND ev.seq > d.seq AND ev.seq <= d.last_seq"""
    )
    with op.batch_alter_table("event_deliveries") as batch:
        batch.drop_column("last_seq")
