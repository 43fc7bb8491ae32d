"""The Redis bus: each execution's channel and the global feed get their events, and a
publish whose events all go to both is written out once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.events import redis_bus
from app.events.bus import FEED
from app.events.redis_bus import RedisBus
from app.store.records import EventRecord


def event(execution_id: uuid.UUID, seq: int, kind: str) -> EventRecord:
    return EventRecord(execution_id, seq, kind, {"n": seq, "text": "é"}, datetime.now(UTC))


async def drain(queue: asyncio.Queue[EventRecord], count: int) -> list[EventRecord]:
    got = [await asyncio.wait_for(queue.get(), timeout=5) for _ in range(count)]
    await asyncio.sleep(0.05)
    assert queue.empty(), "more events than expected"
    return got


async def test_channels_and_feed_get_their_events_each_written_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[int] = []
    real = redis_bus.encode

    def encode(events: Sequence[EventRecord]) -> str:
        encoded.append(len(events))
        return real(events)

    monkeypatch.setattr(redis_bus, "encode", encode)
    redis = Redis.from_url(settings.redis_url or "")
    bus = RedisBus(redis, settings.key_prefix)
    one, two = uuid.uuid4(), uuid.uuid4()
    try:
        async with (
            bus.subscribe(FEED) as feed,
            bus.subscribe(one) as first,
            bus.subscribe(two) as second,
        ):
            created = [event(one, 1, "execution.created")]
            await bus.publish(created)
            assert await drain(first, 1) == created
            assert await drain(feed, 1) == created
            assert encoded == [1]  # one text for the channel and the feed

            encoded.clear()
            mixed = [
                event(one, 2, "execution.started"),
                event(one, 3, "step.started"),
                event(two, 1, "execution.created"),
            ]
            await bus.publish(mixed)
            assert await drain(first, 2) == mixed[:2]
            assert await drain(second, 1) == mixed[2:]
            assert await drain(feed, 2) == [mixed[0], mixed[2]]
            assert sorted(encoded) == [1, 2, 2]

            encoded.clear()
            steps = [event(one, 4, "step.started"), event(one, 5, "step.completed")]
            await bus.publish(steps)
            assert await drain(first, 2) == steps
            assert feed.empty() and encoded == [2]
    finally:
        await bus.close()
        await redis.aclose()
