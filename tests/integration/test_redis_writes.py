"""A process's job enqueues and event publishes share one Redis pipeline at a time: a queued
submission's job and its `execution.created` are one round trip, the job written atomically
and first, publishes in the order asked, and a failed enqueue still reaches its caller."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.events.redis_bus import RedisBus
from app.events.redis_writes import RedisWrites
from app.execution.queue import ArqQueue, redis_settings
from app.execution.strategies import QueuedExecutionStrategy
from app.nodes.registry import default_registry
from app.store.records import EventRecord, NewExecution
from app.store.repository import Repository
from app.workflows.graph import compile_workflow
from tests.support.executions import new_queued
from tests.support.throwaway import ThrowawayRedis


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(settings))
    yield pool
    await pool.aclose()


class CountedPipelines:
    """Counts the pipelines opened on a client, and whether each was a MULTI/EXEC."""

    def __init__(self, pool: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[bool] = []
        real = pool.pipeline

        def pipeline(transaction: bool = True, **kwargs: Any) -> Any:
            self.opened.append(transaction)
            return real(transaction=transaction, **kwargs)

        monkeypatch.setattr(pool, "pipeline", pipeline)


def new_execution() -> NewExecution:
    return new_queued({"nodes": [{"id": "a", "type": "noop"}]}, priority=2)


def event(execution_id: uuid.UUID, seq: int) -> EventRecord:
    return EventRecord(execution_id, seq, "step.started", {"n": seq}, datetime.now(UTC))


def sharing_one_pipeline(
    redis: ArqRedis, settings: Settings, engine: AsyncEngine
) -> tuple[ArqQueue, RedisBus, QueuedExecutionStrategy]:
    """A queue and a bus sharing one RedisWrites, as build_runtime makes them."""
    writes = RedisWrites(redis)
    queue = ArqQueue(redis, settings.queue_name, writes=writes)
    bus = RedisBus(redis, settings.key_prefix, writes)
    return queue, bus, QueuedExecutionStrategy(Repository(engine), bus, queue)


async def test_a_queued_submission_writes_its_job_and_events_in_one_pipeline(
    pool: ArqRedis, settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, bus, strategy = sharing_one_pipeline(pool, settings, engine)
    new = new_execution()
    compiled = compile_workflow(new.definition, default_registry(), max_nodes=10)
    counted = CountedPipelines(pool, monkeypatch)
    try:
        async with bus.subscribe(new.id) as stream:
            started = await strategy.start(new, compiled)
            opened = list(counted.opened)
            created = await asyncio.wait_for(stream.get(), timeout=5)
            # Atomic with the publish: the job waits in the queue by the time anyone sees it.
            assert await queue.live([new.id]) == {new.id}
    finally:
        await bus.close()
    assert created.type == "execution.created" and created.execution_id == started.record.id
    assert opened == [True]  # one round trip, in MULTI/EXEC
    assert await queue.position(new.id) == 1


async def test_concurrent_enqueues_and_publishes_share_pipelines_in_order(
    pool: ArqRedis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = RedisWrites(pool)
    queue = ArqQueue(pool, settings.queue_name, writes=writes)
    bus = RedisBus(pool, settings.key_prefix, writes)
    execution_id = uuid.uuid4()
    others = [uuid.uuid4() for _ in range(40)]
    counted = CountedPipelines(pool, monkeypatch)
    try:
        async with bus.subscribe(execution_id) as stream:
            await asyncio.gather(
                *(bus.publish([event(execution_id, seq)]) for seq in range(1, 41)),
                *(queue.enqueue(other, priority=n % 3) for n, other in enumerate(others)),
            )
            opened = list(counted.opened)
            seen = [(await asyncio.wait_for(stream.get(), timeout=5)).seq for _ in range(40)]
    finally:
        await bus.close()
    assert seen == list(range(1, 41))  # in the order asked
    assert await queue.live(others) == set(others)
    # 80 writes asked together: they gather (at most the first could go alone).
    assert 1 <= len(opened) <= 2
    assert opened[-1] is True  # with jobs in it: MULTI/EXEC


async def test_with_redis_down_the_enqueue_fails_to_its_caller_and_the_publish_is_dropped(
    engine: AsyncEngine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    down = ArqRedis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens
    queue, bus, strategy = sharing_one_pipeline(down, settings, engine)
    new = new_execution()
    compiled = compile_workflow(new.definition, default_registry(), max_nodes=10)
    try:
        with pytest.raises(RedisError):
            await queue.enqueue(uuid.uuid4())
        await bus.publish([event(uuid.uuid4(), 1)])  # best effort: no error
        with caplog.at_level(logging.ERROR):
            started = await strategy.start(new, compiled)  # committed; the reconciler enqueues
    finally:
        await down.aclose()
    assert started.record.status == "pending" and not started.finished
    assert any(r.getMessage() == "enqueue failed" for r in caplog.records)


async def test_a_publish_waits_for_redis_only_when_writes_back_up(
    throwaway_redis: ThrowawayRedis,
) -> None:
    redis = Redis.from_url(throwaway_redis.url)
    bus = RedisBus(redis, "t", RedisWrites(redis, max_writes=2))
    execution_id = uuid.uuid4()
    assert throwaway_redis.proc is not None
    pid = throwaway_redis.proc.pid
    try:
        async with bus.subscribe(execution_id) as stream:
            await redis.ping()  # connected before the server stops answering
            os.kill(pid, signal.SIGSTOP)
            try:
                # Taken at once: the caller goes on while its pipeline waits on Redis.
                await asyncio.wait_for(bus.publish([event(execution_id, 1)]), 1.0)
                await asyncio.wait_for(bus.publish([event(execution_id, 2)]), 1.0)
                # Two writes now wait behind the stuck pipeline (the next one's worth).
                third = asyncio.ensure_future(bus.publish([event(execution_id, 3)]))
                await asyncio.sleep(0.3)
                assert not third.done()
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.wait_for(third, 5)
            seen = [(await asyncio.wait_for(stream.get(), timeout=5)).seq for _ in range(3)]
    finally:
        await bus.close()
        await redis.aclose()
    assert seen == [1, 2, 3]
