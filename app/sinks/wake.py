"""Waking the delivery loops as soon as events with deliveries are committed.

`OutboxBus` wraps the event bus (every event is published to it after its commit): when
some of a publish's events match a subscription it pokes this process's loop and, with
Redis, every process's (`{prefix}:outbox`), at most once per `POKE_EVERY_S` from a
process: the first commit of a quiet spell pokes at once, the commits within the interval
after it share one poke at its end (a worker claims once per burst anyway). The loops also
poll, so a lost poke only delays a delivery by `sink_poll_ms`. With the process's Redis
pipeline (`RedisWrites`), a poke rides in it, beside the events it is about, rather than
costing a round trip of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.events.bus import EventBus
from app.events.redis_writes import RedisWrites
from app.store.outbox import OutboxMatcher
from app.store.records import EventRecord
from app.tasks import stop

log = logging.getLogger(__name__)

# As the delivery loop's own pause after a poke (app/sinks/dispatcher.py, COALESCE_S).
POKE_EVERY_S = 0.005


class OutboxSignal:
    # A write of the process's Redis pipeline (app/events/redis_writes.py).
    atomic = False

    def __init__(self, redis: Redis | None, prefix: str) -> None:
        self.redis = redis
        self.channel = f"{prefix}:outbox"
        self.local = asyncio.Event()
        # The process's pipeline, when it has one (set by the runtime): pokes ride in it.
        self.writes: RedisWrites | None = None
        self._listener: asyncio.Task[None] | None = None
        self._poking: asyncio.Future[None] | None = None
        self._last = -POKE_EVERY_S
        self._later: asyncio.TimerHandle | None = None
        # Set by this process's delivery loop: True while it can take more queues itself.
        self.local_room: Callable[[], bool] | None = None

    async def poke(self) -> None:
        """Wake the loops; never waits for Redis (the caller is a run's write path). A
        process whose own loop has room does not tell the others: its loop claims what it
        wrote (the others poll)."""
        self.local.set()
        if self.local_room is not None and self.local_room():
            return
        if self.redis is None or self._later is not None:
            return  # no one to tell, or a poke is due at the interval's end
        now = time.monotonic()
        wait = self._last + POKE_EVERY_S - now
        if wait > 0 or (self._poking is not None and not self._poking.done()):
            self._later = asyncio.get_running_loop().call_later(max(wait, 0.001), self._due)
            return
        self._start(now)

    def _due(self) -> None:
        self._later = None
        if self._poking is not None and not self._poking.done():  # Redis is slow: later
            self._later = asyncio.get_running_loop().call_later(POKE_EVERY_S, self._due)
            return
        self._start(time.monotonic())

    def _start(self, now: float) -> None:
        self._last = now
        if self.writes is not None:
            self._poking = self.writes.send(self, None)
        else:
            self._poking = asyncio.create_task(self._publish())

    def add(self, pipe: Any, items: Sequence[None]) -> None:
        """Its command in the process's pipeline: one poke, however many were asked."""
        pipe.publish(self.channel, "1")

    async def _publish(self) -> None:
        assert self.redis is not None
        try:
            await self.redis.publish(self.channel, "1")
        except Exception:  # best effort: the loops poll
            log.debug("outbox poke failed", exc_info=True)

    async def wait(self, timeout_s: float) -> bool:
        """Until poked or `timeout_s`; True when poked."""
        poked = True
        try:
            await asyncio.wait_for(self.local.wait(), timeout_s)
        except TimeoutError:
            poked = False
        self.local.clear()
        return poked

    async def _listen(self) -> None:
        assert self.redis is not None
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.local.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)  # Redis is down: the loops poll meanwhile
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def listen(self) -> None:
        """Take pokes from other processes too (the processes that deliver)."""
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="turnout-outbox-poke")

    async def close(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self._poking is not None:
            await asyncio.gather(self._poking, return_exceptions=True)
        await stop(self._listener)
        self._listener = None


class OutboxBus:
    """An event bus that also pokes the delivery loops (see the module's docstring)."""

    def __init__(self, inner: EventBus, matcher: OutboxMatcher, signal: OutboxSignal) -> None:
        self.inner = inner
        self.matcher = matcher
        self.signal = signal

    async def publish(self, events: Sequence[EventRecord]) -> None:
        await self.inner.publish(events)
        if self.matcher.targets and self.matcher.takes_any([e.type for e in events]):
            await self.signal.poke()

    def subscribe(
        self, execution_id: UUID
    ) -> AbstractAsyncContextManager[asyncio.Queue[EventRecord]]:
        return self.inner.subscribe(execution_id)

    @property
    def subscriber_count(self) -> int:
        count: int = getattr(self.inner, "subscriber_count", 0)
        return count

    async def close(self) -> None:
        await self.inner.close()
