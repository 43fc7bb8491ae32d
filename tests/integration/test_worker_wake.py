"""Workers wake when a job is enqueued instead of at their next poll (worker/wake.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import arq.worker
import pytest
from arq.constants import in_progress_key_prefix
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.engine.status import Status
from app.events.bus import InProcessBus
from app.execution import wakeups
from app.execution.queue import ArqQueue, arq_pool
from app.execution.strategies import QueuedExecutionStrategy
from app.nodes.registry import default_registry
from app.store.repository import Repository
from app.workflows.graph import compile_workflow
from tests.support.executions import insert_pending, new_queued, wait_status
from tests.support.workers import running_worker
from worker import wake

ONE = {"nodes": [{"id": "a", "type": "transform", "params": {"x": 1}}]}
# Far longer than the test waits: only a wake-up can start the job in time.
SLOW_POLL_MS = 20_000


async def test_a_wake_up_ends_the_polls_sleep() -> None:
    polls = wake.poll(60.0)
    await anext(polls)
    waiting = asyncio.ensure_future(anext(polls))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # asleep until woken
    wake.waker().wake()
    await asyncio.wait_for(waiting, 1.0)
    # A wake-up during an iteration (between two yields) skips the next sleep.
    wake.waker().wake()
    await asyncio.wait_for(anext(polls), 1.0)
    await polls.aclose()


async def test_an_idle_worker_starts_a_new_job_at_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    slow = settings.model_copy(update={"worker_poll_delay_ms": SLOW_POLL_MS})
    repo = Repository(engine)
    pool = arq_pool(slow)
    strategy = QueuedExecutionStrategy(repo, InProcessBus(), ArqQueue(pool, slow.queue_name))
    compiled = compile_workflow(ONE, default_registry(), max_nodes=10)
    try:
        async with running_worker(slow):
            assert arq.worker.poll is wake.poll  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)  # its first poll found nothing: it sleeps 20 s
            for _ in range(3):
                started = time.monotonic()
                record = (await strategy.start(new_queued(ONE), compiled)).record
                await wait_status(repo, record.id, Status.COMPLETED, timeout_s=5)
                assert time.monotonic() - started < 2.0
    finally:
        await pool.aclose()


async def test_a_burst_of_enqueues_makes_two_calls_and_the_last_job_is_called_for(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.3  # longer than the burst takes on a loaded machine
    monkeypatch.setattr(wakeups, "WAKE_EVERY_S", interval)
    pool = arq_pool(settings)
    queue = ArqQueue(pool, settings.queue_name)
    try:
        async with pool.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(wakeups.wake_channel(settings.queue_name))
            calls: list[float] = []

            async def listen() -> None:
                while True:
                    if await pubsub.get_message(timeout=1.0) is not None:
                        calls.append(time.monotonic())

            listening = asyncio.create_task(listen())
            await asyncio.sleep(0.05)
            first = time.monotonic()
            for _ in range(5):
                await queue.enqueue(uuid.uuid4())
            last = time.monotonic()
            assert last - first < interval
            await asyncio.sleep(interval + 0.2)
            # One call with the first job, one at the interval's end for the rest.
            assert len(calls) == 2, calls
            assert calls[1] >= last and calls[1] - first < interval + 0.15
            # After a quiet spell, the next job calls at once.
            await queue.enqueue(uuid.uuid4())
            await asyncio.sleep(0.1)
            assert len(calls) == 3
            listening.cancel()
    finally:
        await pool.aclose()


@pytest.mark.parametrize("elsewhere", [False, True])
async def test_an_idle_worker_reads_its_queue_rarely(settings: Settings, elsewhere: bool) -> None:
    pool = arq_pool(settings)
    job_id = f"{settings.key_prefix}:held-by-a-dead-worker"
    if elsewhere:  # a job in the queue that another worker holds (or held, and died)
        await pool.psetex(in_progress_key_prefix + job_id, 60_000, b"1")
        await pool.zadd(settings.queue_name, {job_id: int(time.time() * 1000) - 1000})
    try:
        async with running_worker(settings):  # busy polls every 2 ms
            await asyncio.sleep(0.3)
            before = wake.waker().polls
            await asyncio.sleep(1.0)
            idle = wake.waker().polls - before
    finally:
        await pool.delete(in_progress_key_prefix + job_id)
        await pool.zrem(settings.queue_name, job_id)
        await pool.aclose()
    # At most one read per IDLE_POLL_S (0.5 s) with nothing it could start, not ~500.
    assert idle <= 4, idle


async def test_an_idle_worker_starts_a_deferred_job_when_it_is_due(
    settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wake, "IDLE_POLL_S", 20.0)  # only the job's own time can wake it
    repo = Repository(engine)
    pool = arq_pool(settings)
    queue = ArqQueue(pool, settings.queue_name)
    try:
        async with running_worker(settings):
            await asyncio.sleep(0.5)  # idle: asleep for up to 20 s
            execution_id = await insert_pending(repo, ONE)
            started = time.monotonic()
            await queue.enqueue(execution_id, defer_until=utcnow() + timedelta(seconds=0.4))
            await wait_status(repo, execution_id, Status.COMPLETED, timeout_s=5)
            took = time.monotonic() - started
            assert 0.35 <= took < 2.0, took
    finally:
        await pool.aclose()
