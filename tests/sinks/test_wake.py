"""Pokes across processes (real Redis): skipped while this process's own loop has room."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.events.redis_writes import RedisWrites
from app.sinks.wake import OutboxSignal


async def test_a_process_with_room_wakes_only_its_own_loop(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url or "")
    other = OutboxSignal(redis, settings.key_prefix)  # another process's loop
    other.listen()
    mine = OutboxSignal(redis, settings.key_prefix)
    room = True
    mine.local_room = lambda: room
    try:
        await asyncio.sleep(0.2)  # subscribed
        await mine.poke()
        assert mine.local.is_set()
        assert not await other.wait(0.3)  # this process delivers what it wrote
        room = False  # its loop is full: the others are told
        await mine.poke()
        assert await other.wait(2.0)
    finally:
        await mine.close()
        await other.close()
        await redis.aclose()


@pytest.mark.parametrize("pipeline", [False, True], ids=["own-round-trip", "in-the-pipeline"])
async def test_a_burst_of_pokes_makes_one_now_and_one_at_the_intervals_end(
    settings: Settings, pipeline: bool
) -> None:
    redis = Redis.from_url(settings.redis_url or "")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"{settings.key_prefix}:outbox")
    mine = OutboxSignal(redis, settings.key_prefix)  # a process that does not deliver
    if pipeline:  # as the runtime wires it: pokes ride in the process's one pipeline
        mine.writes = RedisWrites(redis)

    async def heard(within_s: float) -> int:
        count, deadline = 0, asyncio.get_running_loop().time() + within_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if await pubsub.get_message(timeout=left) is not None:
                count += 1
        return count

    try:
        for _ in range(50):  # fifty commits in a burst
            await mine.poke()
        assert await heard(0.3) == 2  # the first at once, the rest in one trailing poke
        await asyncio.sleep(0.05)
        await mine.poke()  # a quiet spell's first commit goes at once again
        assert await heard(0.3) == 1
    finally:
        await mine.close()
        await pubsub.aclose()
        await redis.aclose()
