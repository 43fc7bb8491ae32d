"""Retention: ended executions older than TURNOUT_RETENTION_DAYS are deleted with their steps
and events, a batch (TURNOUT_RETENTION_BATCH) per transaction, by the reconciler's pass."""

from __future__ import annotations

import logging
from datetime import timedelta

from app.config import Settings
from app.engine.state import utcnow
from app.metrics import RETENTION_DELETED
from app.store.history import HistoryStore
from app.store.rollups import RollupStore

log = logging.getLogger(__name__)

# Batches per pass: a big backlog drains over several passes, never in one long stall.
MAX_BATCHES_PER_PASS = 10


class Retention:
    def __init__(self, settings: Settings, store: HistoryStore) -> None:
        self.days = settings.retention_days
        self.batch = settings.retention_batch
        self.store = store

    async def run_once(self) -> int:
        """Delete what is due now (at most a few batches); returns how many executions."""
        if self.days is None:
            return 0
        cutoff = utcnow() - timedelta(days=self.days)
        deleted = 0
        for _ in range(MAX_BATCHES_PER_PASS):
            n = await self.store.delete_ended_before(cutoff, self.batch)
            deleted += n
            if n < self.batch:
                break
        if deleted:
            # The analytics' rollups describe the runs stored: drop what was deleted.
            await RollupStore(self.store.engine).refold_through(cutoff)
            RETENTION_DELETED.inc(deleted)
            log.info("retention deleted executions", extra={"count": deleted})
        return deleted
