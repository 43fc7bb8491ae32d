"""The Redis Streams sink, read back with a consumer group from the real Redis."""

from __future__ import annotations

import json
import uuid

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.sinks.base import Message
from app.sinks.redis_stream import RedisStreamSink
from app.store.subscriptions import SubscriptionRecord
from tests.sinks.test_webhooks import start_runs, stored_seqs, subscribe
from tests.support.executions import wait_until
from tests.support.workers import running_worker


async def test_events_go_to_the_stream_and_a_consumer_group_reads_them_in_order(
    client: httpx.AsyncClient, sink_settings: Settings, engine: AsyncEngine
) -> None:
    stream = f"{sink_settings.key_prefix}:events"
    await subscribe(client, sink="redis-stream", stream=stream, events=["*"])
    redis = aioredis.Redis.from_url(sink_settings.redis_url or "")
    try:
        await redis.xgroup_create(stream, "billing", id="0", mkstream=True)
        async with running_worker(sink_settings):
            ids = await start_runs(client, 5, "queued")
            want = 0

            async def all_there() -> bool:
                nonlocal want
                want = sum(len(s) for s in (await stored_seqs(engine, ids)).values())
                return want >= 40 and int(await redis.xlen(stream)) >= want

            await wait_until(all_there, "every event in the stream", timeout_s=30)
        read = await redis.xreadgroup("billing", "c1", {stream: ">"}, count=1000)
        [(_, entries)] = read
        seen: dict[str, list[int]] = {}
        for entry_id, fields in entries:
            body = json.loads(fields[b"data"])
            assert fields[b"id"].decode() == f"{body['executionId']}:{body['seq']}"
            assert fields[b"type"].decode() == body["type"]
            seen.setdefault(body["executionId"], []).append(int(fields[b"seq"]))
            await redis.xack(stream, "billing", entry_id)
        assert seen == await stored_seqs(engine, ids)
        assert (await redis.xpending(stream, "billing"))["pending"] == 0
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def test_the_stream_is_capped_with_an_approximate_maxlen(sink_settings: Settings) -> None:
    stream = f"{sink_settings.key_prefix}:capped"
    redis = aioredis.Redis.from_url(sink_settings.redis_url or "")
    sink = RedisStreamSink(redis, maxlen=10)
    sub = SubscriptionRecord(
        uuid.uuid4(), "default", "redis-stream", None, stream, ["*"], None, None, None,
        "active", utcnow(), utcnow(),
    )  # fmt: skip
    try:
        for seq in range(1, 501):
            outcome = await sink.send(
                sub, None, Message(uuid.uuid4(), seq, "step.completed", b"{}")
            )
            assert outcome.ok
        # MAXLEN ~ trims whole nodes (100 entries by default): far below 500, at least 10.
        assert 10 <= int(await redis.xlen(stream)) <= 200
    finally:
        await redis.delete(stream)
        await redis.aclose()
