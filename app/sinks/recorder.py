"""Deliveries made, recorded for many queues in one statement ("group commit").

Each queue task hands over what it sent (and its last delivery, to lease what came after
it) and waits. The first one in starts a flush at once; those that arrive while a flush
is in the database go together in the next one. An idle loop waits for nothing, a busy
one makes one round trip for all the queues that finished meanwhile instead of one each."""

from __future__ import annotations

import asyncio

from app.store.deliveries import DeliveryRecord, DeliveryStore, Recorded

# At most this many queues' records per statement.
MAX_BATCH = 200


class DeliveryRecorder:
    def __init__(self, deliveries: DeliveryStore, owner: str, lease_ms: int) -> None:
        self.deliveries = deliveries
        self.owner = owner
        self.lease_ms = lease_ms
        self.waiting: list[tuple[Recorded, asyncio.Future[list[DeliveryRecord]]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def record(self, item: Recorded) -> list[DeliveryRecord]:
        """Record `item`; the deliveries after `item.last` now leased to this owner."""
        future: asyncio.Future[list[DeliveryRecord]] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_all())
        return await asyncio.shield(future)  # a cancelled waiter leaves the batch intact

    async def record_many(self, items: list[Recorded]) -> list[list[DeliveryRecord]]:
        """`record` for each of `items` (one statement, unless a flush is under way)."""
        return list(await asyncio.gather(*(self.record(item) for item in items)))

    async def _flush_all(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            try:
                found = await self.deliveries.delivered_and_next(
                    self.owner, [item for item, _ in batch], self.lease_ms
                )
            except Exception as exc:  # each waiter's queue stops; its lease runs out
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                        future.exception()  # retrieved, even if its waiter was cancelled
                continue
            for (_, future), rows in zip(batch, found, strict=True):
                if not future.done():
                    future.set_result(rows)

    async def close(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
