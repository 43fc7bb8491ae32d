"""Live event fan-out: in-process, or Redis pub/sub so any replica can stream any execution."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol
from uuid import UUID

from app.store.records import EventRecord

# Subscribe to this id for the global feed: every execution-level event of every execution.
FEED = UUID(int=0)


def in_feed(event: EventRecord) -> bool:
    """Execution-level events (created, started, completed, ...) go to the global feed."""
    return event.type.startswith("execution.")


class EventBus(Protocol):
    """Publishes committed events; subscribers get them live (the database is the truth)."""

    async def publish(self, events: Sequence[EventRecord]) -> None: ...

    def subscribe(
        self, execution_id: UUID
    ) -> AbstractAsyncContextManager[asyncio.Queue[EventRecord]]: ...

    async def close(self) -> None: ...


class InProcessBus:
    """Fan-out inside one process: the embedded default, and the API's local delivery."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self._subs: dict[UUID, set[asyncio.Queue[EventRecord]]] = defaultdict(set)
        self._max_queue = max_queue

    async def publish(self, events: Sequence[EventRecord]) -> None:
        self.deliver(events)
        self.deliver([e for e in events if in_feed(e)], feed=True)

    def deliver(self, events: Sequence[EventRecord], *, feed: bool = False) -> None:
        """To the streams of each event's execution, or (`feed`) to the global feed's."""
        for event in events:
            for queue in self._subs.get(FEED if feed else event.execution_id, ()):
                if queue.qsize() < self._max_queue:  # a stuck reader catches up from the store
                    queue.put_nowait(event)

    @asynccontextmanager
    async def _subscription(self, execution_id: UUID) -> AsyncIterator[asyncio.Queue[EventRecord]]:
        queue: asyncio.Queue[EventRecord] = asyncio.Queue()
        self._subs[execution_id].add(queue)
        try:
            yield queue
        finally:
            subs = self._subs.get(execution_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subs[execution_id]

    def subscribe(
        self, execution_id: UUID
    ) -> AbstractAsyncContextManager[asyncio.Queue[EventRecord]]:
        return self._subscription(execution_id)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def close(self) -> None:
        self._subs.clear()
