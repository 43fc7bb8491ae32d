"""The reconciler: finds accepted executions that nobody will run any more, and re-enqueues them.

An execution is orphaned when it is `pending` with no job waiting for it (the enqueue failed,
Redis restarted, or the worker that took the job died before claiming it), `running` with an
expired lease (its runner died or hung), or `waiting` past its wake-up with no job. It only
ever enqueues: the claim (a guarded update) decides whether anything runs, so a terminal or
paused execution is never touched, and two reconcilers racing cost one no-op job at most.
Outbox deliveries leased by a dead worker are released for the delivery loops too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from app.config import Settings
from app.engine.state import utcnow
from app.execution.queue import ExecutionQueue
from app.metrics import EXECUTIONS_RECOVERED
from app.observability.retention import Retention
from app.store.deliveries import DeliveryStore
from app.store.history import HistoryStore
from app.store.repository import Repository
from app.store.rollups import RollupStore

log = logging.getLogger(__name__)

# How long the loop waits after a pass that failed (database or Redis down), doubling up to
# the maximum, so an outage is not hammered.
_BACKOFF_MAX_S = 10.0
PRUNE_EVERY_S = 60.0  # old deliveries are deleted at most this often

Sweep = Callable[[int, int], Awaitable[int]]


class Reconciler:
    """One pass at a time, cluster-wide (a short Redis lock), every `reconcile_interval_ms`."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        queue: ExecutionQueue,
        sweeps: Sequence[Sweep] = (),
    ) -> None:
        self.repo = repo
        self.sweeps = tuple(sweeps)  # more passes of the leader: (grace_ms, limit) -> found
        self.queue = queue
        self.interval_s = settings.reconcile_interval_ms / 1000
        self.pending_grace_ms = settings.reconcile_pending_grace_ms
        self.batch = settings.reconcile_batch
        self.retention = Retention(settings, HistoryStore(repo.engine))
        self.rollups = RollupStore(repo.engine)
        self.deliveries = DeliveryStore(repo.engine)
        self.delivery_retention = timedelta(days=settings.sink_retention_days)
        self._pruned_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Re-enqueue the orphans found now; returns how many."""
        if not await self.queue.lead("reconciler", max(1, int(self.interval_s * 1000 * 0.9))):
            return 0  # another process does this pass
        await self.retention.run_once()
        await self.rollups.fold()  # the analytics' hourly rollups, up to now
        for sweep in self.sweeps:
            await sweep(self.pending_grace_ms, self.batch)
        await self._outbox_pass()
        orphans = await self.repo.find_orphans(
            pending_grace_ms=self.pending_grace_ms, limit=self.batch
        )
        if not orphans:
            return 0
        live = await self.queue.live([execution_id for execution_id, _ in orphans])
        recovered = 0
        for execution_id, priority in orphans:
            if execution_id in live:
                continue
            await self.queue.enqueue(execution_id, priority=priority)
            recovered += 1
        if recovered:
            EXECUTIONS_RECOVERED.inc(recovered)
            log.warning("re-enqueued orphaned executions", extra={"count": recovered})
        return recovered

    async def _outbox_pass(self) -> None:
        """Free a dead worker's deliveries; now and then, delete old finished ones."""
        released = await self.deliveries.release_expired()
        if released:
            log.warning("released deliveries of a dead worker", extra={"count": released})
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            await self.deliveries.prune(utcnow() - self.delivery_retention)

    async def run_forever(self) -> None:
        delay = self.interval_s
        while True:
            try:
                await self.run_once()
                delay = self.interval_s
            except Exception as exc:
                delay = min(_BACKOFF_MAX_S, max(self.interval_s, delay * 2))
                log.warning(
                    "reconciler pass failed; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:200], "retry_in_s": delay},
                )
            await asyncio.sleep(delay)

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="turnout-reconciler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
