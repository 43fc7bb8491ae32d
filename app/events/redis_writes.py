"""One Redis pipeline at a time for a process's job enqueues and event publishes.

Writes asked while a pipeline is in flight gather and go together in the next one (group
commit, `app/store/batching.py`), so a queued submission's job and its `execution.created`
share a round trip, and so do the enqueues and publishes of concurrent requests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis

from app.store.batching import GroupCommit

log = logging.getLogger(__name__)

# Writes (one enqueue, or one publish of a write's events) that share one pipeline at most.
MAX_WRITES = 500

Item = TypeVar("Item", contravariant=True)


class PipelineWriter(Protocol[Item]):
    """A kind of write: adds the commands of its items, in the order asked, to a pipeline."""

    # Its commands need MULTI/EXEC (a job is written atomically, as arq's enqueue_job does).
    atomic: bool

    def add(self, pipe: Any, items: Sequence[Item]) -> None: ...


Write = tuple[PipelineWriter[Any], Any]


class RedisWrites:
    """Gathers the writes of every writer of a process into one pipeline at a time: in
    MULTI/EXEC when an atomic write is in it, atomic writers' commands first (a job goes
    no later than the events published after it was asked); each writer's in order.

    A failed pipeline with an atomic write in it is written again one write at a time, so
    a failed enqueue reaches its caller; a failed publish is logged and dropped (live
    delivery is best effort: streams catch up from the store)."""

    def __init__(self, redis: Redis, *, max_writes: int = MAX_WRITES) -> None:
        self.redis = redis
        # One pipeline at a time keeps an execution's publishes in order on the wire.
        self._group: GroupCommit[Write, None] = GroupCommit(
            self._write, max_rows=max_writes, max_in_flight=1
        )

    def ask(self, writer: PipelineWriter[Item], item: Item) -> asyncio.Future[None]:
        """Take the write now (before the caller's next await); the future is its outcome."""
        return asyncio.shield(self._group.enqueue((writer, item)))

    def send(self, writer: PipelineWriter[Item], item: Item) -> asyncio.Future[None]:
        """`ask`, for a caller that may not wait: the outcome is retrieved either way (a
        failed publish is logged here; a failure shared with a job is that enqueue's)."""
        sent = self.ask(writer, item)
        sent.add_done_callback(_retrieved)
        return sent

    async def submit(self, writer: PipelineWriter[Item], item: Item) -> None:
        await self.ask(writer, item)

    async def settle(self) -> None:
        """Wait for the writes asked so far (publishes nobody waited for, before closing)."""
        await self._group.settle()

    @property
    def backed_up(self) -> bool:
        """More writes wait than the next pipeline takes: askers should wait their turn."""
        return self._group.waiting >= self._group.max_rows

    async def _write(self, batch: Sequence[Write]) -> list[None]:
        by_writer: dict[PipelineWriter[Any], list[Any]] = {}
        for writer, item in batch:
            by_writer.setdefault(writer, []).append(item)
        atomic = any(writer.atomic for writer in by_writer)
        try:
            async with self.redis.pipeline(transaction=atomic) as pipe:
                for writer in sorted(by_writer, key=lambda w: not w.atomic):  # stable
                    writer.add(pipe, by_writer[writer])
                await pipe.execute()
        except Exception:
            if atomic:
                raise
            log.warning("event publish failed", exc_info=True)
        return [None] * len(batch)


def _retrieved(sent: asyncio.Future[None]) -> None:
    if not sent.cancelled():
        sent.exception()
