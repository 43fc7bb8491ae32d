"""Analytics rollups: hourly per workflow and version, of the executions that ended (counts,
sums, error codes, a log-scale duration histogram), folded by the reconciler up to a
watermark; backfilled here from the stored rows.

Revision ID: 0005_analytics_rollups
Revises: 0004_observability
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from app.store.rollups import rebuild_sync
from app.store.tables import analytics_watermark, execution_rollup_errors, execution_rollups

revision: str = "0005_analytics_rollups"
down_revision: str | Sequence[str] | None = "0004_observability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in (execution_rollups, execution_rollup_errors, analytics_watermark):
        table.create(bind)
    op.create_index("ix_workflow_executions_completed", "workflow_executions", ["completed_at"])
    rebuild_sync(bind)


def downgrade() -> None:
    op.drop_index("ix_workflow_executions_completed", "workflow_executions")
    for table in (analytics_watermark, execution_rollup_errors, execution_rollups):
        table.drop(op.get_bind())
