"""Redis pub/sub fan-out: one shared subscriber connection per process, many local streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.events.bus import FEED, InProcessBus, in_feed
from app.events.redis_writes import RedisWrites
from app.jsonvalue import dumps
from app.store.records import EventRecord

log = logging.getLogger(__name__)


def encode(events: Sequence[EventRecord]) -> str:
    return dumps(
        [
            {
                "e": str(e.execution_id),
                "s": e.seq,
                "t": e.type,
                "d": e.data,
                "c": e.created_at.isoformat(),
            }
            for e in events
        ]
    )


def decode(raw: str | bytes) -> list[EventRecord]:
    items: list[dict[str, Any]] = json.loads(raw)
    return [
        EventRecord(UUID(i["e"]), i["s"], i["t"], i["d"], datetime.fromisoformat(i["c"]))
        for i in items
    ]


class RedisBus:
    """Publishes to `{prefix}:events:{id}`; a single reader task feeds local subscribers.

    Thousands of open streams share one Redis connection: a channel is subscribed while at
    least one local stream watches it, and a stream starts only once Redis confirmed the
    subscription, so nothing published after its backlog read can be missed."""

    # Publishes need no MULTI/EXEC (they ride in one when a job shares their pipeline).
    atomic = False

    def __init__(self, redis: Redis, prefix: str, writes: RedisWrites | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.local = InProcessBus()
        self._pubsub = redis.pubsub(ignore_subscribe_messages=False)
        self._refs: dict[str, int] = {}
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.feed_channel = self.channel(FEED)
        # The process's one pipeline at a time, shared with its job enqueues: it keeps an
        # execution's publishes in order on the wire.
        self.writes = writes or RedisWrites(redis)

    def channel(self, execution_id: UUID) -> str:
        return f"{self.prefix}:events:{'feed' if execution_id == FEED else execution_id}"

    async def publish(self, events: Sequence[EventRecord]) -> None:
        """Publish after the commit. Concurrent publishes of this process share one
        pipeline (one round trip, one feed message), in the order they were asked.

        The publish is taken at once (its place in that order is fixed here), but the caller
        waits for its round trip only when writes are backed up: live delivery is best
        effort and the store is the record, so an immediate run's answer, or a worker's
        next step, does not wait on Redis (a failed publish is logged by the writer)."""
        if not events:
            return
        sent = self.writes.send(self, events)
        if self.writes.backed_up:
            await sent

    def add(self, pipe: Any, batches: Sequence[Sequence[EventRecord]]) -> None:
        events = [event for batch in batches for event in batch]
        by_execution: dict[UUID, list[EventRecord]] = {}
        for event in events:
            by_execution.setdefault(event.execution_id, []).append(event)
        text = ""
        for execution_id, group in by_execution.items():
            text = encode(group)
            pipe.publish(self.channel(execution_id), text)
        feed = [e for e in events if in_feed(e)]
        if feed:
            # One execution's events, all in the feed (a creation, a start): the same list,
            # so the same text.
            same = len(by_execution) == 1 and len(feed) == len(events)
            pipe.publish(self.feed_channel, text if same else encode(feed))

    @contextlib.asynccontextmanager
    async def _subscription(self, execution_id: UUID) -> AsyncIterator[asyncio.Queue[EventRecord]]:
        channel = self.channel(execution_id)
        async with self.local.subscribe(execution_id) as queue:
            await self._acquire(channel)
            try:
                yield queue
            finally:
                await self._release(channel)

    def subscribe(
        self, execution_id: UUID
    ) -> AbstractAsyncContextManager[asyncio.Queue[EventRecord]]:
        return self._subscription(execution_id)

    async def _acquire(self, channel: str) -> None:
        async with self._lock:
            self._refs[channel] = self._refs.get(channel, 0) + 1
            if self._refs[channel] == 1:
                self._confirm[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read())
            confirmed = self._confirm.get(channel)
        if confirmed is not None:
            await asyncio.wait_for(asyncio.shield(confirmed), timeout=5)

    async def _release(self, channel: str) -> None:
        async with self._lock:
            self._refs[channel] -= 1
            if self._refs[channel] == 0:
                del self._refs[channel]
                self._confirm.pop(channel, None)
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                if not self._refs:
                    return
                continue
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if message["type"] == "subscribe":
            future = self._confirm.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
        elif message["type"] == "message":
            self.local.deliver(decode(message["data"]), feed=channel == self.feed_channel)

    @property
    def subscriber_count(self) -> int:
        return self.local.subscriber_count

    async def close(self) -> None:
        await self.writes.settle()  # the publishes nobody waited for go out first
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.local.close()
