"""Pokes across processes (real Redis): skipped while this process's own loop has room."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from app.config import Settings
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
