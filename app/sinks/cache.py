"""Each process's copy of the subscriptions: what its event writes match against.

Reloaded every `sink_cache_ms` (one small query per process, never one per event), and at
once in the process that changed a subscription. A subscription made in another process
takes events from at most `sink_cache_ms` after it was created."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from app.store.outbox import OutboxMatcher, Target
from app.store.subscriptions import SubscriptionRecord, SubscriptionStore
from app.tasks import stop

log = logging.getLogger(__name__)


class SubscriptionCache:
    def __init__(self, store: SubscriptionStore, matcher: OutboxMatcher, interval_ms: int) -> None:
        self.store = store
        self.matcher = matcher
        self.interval_s = interval_ms / 1000
        self.by_id: dict[UUID, SubscriptionRecord] = {}
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        found = await self.store.receiving()
        self.by_id = {s.id: s for s in found}
        self.matcher.replace(
            [Target(s.id, s.namespace, s.workflow, tuple(s.events)) for s in found]
        )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.load()
            except Exception as exc:  # the database is down: keep the last copy
                log.warning(
                    "cannot reload subscriptions",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:200]},
                )

    async def start(self) -> None:
        try:
            await self.load()
        except Exception as exc:
            log.warning(
                "cannot load subscriptions at startup; retrying",
                extra={"error": f"{type(exc).__name__}: {exc}"[:200]},
            )
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_forever(), name="turnout-sink-cache")

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
