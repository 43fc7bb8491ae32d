"""An idle worker takes the job a wake-up offers, without reading it back from the queue
(worker/direct.py); everything else about the job stays as arq has it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.engine.status import Status
from app.execution import wakeups
from app.execution.queue import ArqQueue, arq_pool
from app.store.repository import Repository
from tests.support.executions import insert_pending, wait_status, wait_until
from tests.support.workers import running_worker
from worker import wake
from worker.direct import DirectStarts

ONE = {"nodes": [{"id": "a", "type": "transform", "params": {"x": 1}}]}
SLOW = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 600}}]}


@pytest_asyncio.fixture
async def pool(settings: Settings) -> AsyncIterator[Any]:
    redis = arq_pool(settings)
    try:
        yield redis
    finally:
        await redis.aclose()


def offers_of(worker: Worker) -> DirectStarts:
    listener: wake.WakeListener = worker.ctx["wake"]
    assert isinstance(listener.offers, DirectStarts)
    return listener.offers


async def started_events(repo: Repository, execution_id: uuid.UUID) -> int:
    return sum(e.type == "execution.started" for e in await repo.events_after(execution_id, 0))


async def submit(repo: Repository, queue: ArqQueue, definition: dict[str, Any]) -> uuid.UUID:
    execution_id = await insert_pending(repo, definition)
    await queue.enqueue(execution_id)
    return execution_id


async def one_by_one(repo: Repository, queue: ArqQueue, count: int) -> list[uuid.UUID]:
    """`count` one-step runs, each submitted once the one before has completed."""
    ids = []
    for _ in range(count):
        ids.append(await submit(repo, queue, ONE))
        await wait_status(repo, ids[-1], Status.COMPLETED, timeout_s=5)
    return ids


async def test_the_call_that_goes_at_once_offers_its_only_job_due_now(
    settings: Settings, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeups, "WAKE_EVERY_S", 0.0)  # every enqueue calls at once
    queue = ArqQueue(pool, settings.queue_name, batch_max=20)
    async with pool.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(wakeups.wake_channel(settings.queue_name))
        one = uuid.uuid4()
        await queue.enqueue(one)
        many = [(uuid.uuid4(), 0) for _ in range(25)]  # two jobs: 20 and 5
        await queue.enqueue_many(many)
        await queue.enqueue(uuid.uuid4(), defer_until=None)
        deferred = uuid.uuid4()
        await queue.enqueue(deferred, defer_until=utcnow() + timedelta(seconds=30))
        messages = [await next_message(pubsub) for _ in range(4)]
    offered = wakeups.decode_offer(messages[0])
    assert offered is not None
    job_id, execution_ids = offered
    assert execution_ids == [str(one)]
    assert await pool.exists(job_key_prefix + job_id)  # the job is in the queue, as arq's
    assert await pool.zscore(settings.queue_name, job_id) is not None
    assert wakeups.decode_offer(messages[1]) is None  # two jobs: a plain wake-up
    assert wakeups.decode_offer(messages[2]) is not None
    assert wakeups.decode_offer(messages[3]) is None  # not due now
    assert wakeups.decode_offer(b"") is None and wakeups.decode_offer(b"job-alone") is None


async def next_message(pubsub: Any) -> bytes:
    for _ in range(50):
        message = await pubsub.get_message(timeout=0.1)
        if message is not None:
            data: bytes = message["data"]
            return data
    raise AssertionError("no wake-up call")


async def test_an_idle_worker_runs_the_offered_job_and_arq_never_starts_it(
    settings: Settings, engine: AsyncEngine, pool: Any
) -> None:
    repo = Repository(engine)
    queue = ArqQueue(pool, settings.queue_name)
    async with running_worker(settings) as worker:
        await asyncio.sleep(0.3)  # idle
        ids = await one_by_one(repo, queue, 3)
        offers = offers_of(worker)
        await wait_until(lambda: not offers.busy, "the last offer finished")
        assert offers.taken == 3
        assert worker.jobs_complete == 0  # arq ran none of them
    for execution_id in ids:
        assert await started_events(repo, execution_id) == 1
    # Removed as arq removes a finished job: nothing is left of them in Redis.
    assert await pool.zcard(settings.queue_name) == 0
    for execution_id in ids:
        job_id = (await pool.get(f"{settings.queue_name}:job:{execution_id}")).decode()
        assert not await pool.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)
    assert await queue.live(ids) == set()


async def test_a_worker_with_a_job_in_hand_leaves_the_next_offer_to_its_poll(
    settings: Settings, engine: AsyncEngine, pool: Any
) -> None:
    repo = Repository(engine)
    queue = ArqQueue(pool, settings.queue_name)
    async with running_worker(settings) as worker:
        await asyncio.sleep(0.3)
        slow = await submit(repo, queue, SLOW)
        await wait_status(repo, slow, Status.RUNNING, timeout_s=5)
        fast = await submit(repo, queue, ONE)  # offered while the worker is busy
        await wait_status(repo, fast, Status.COMPLETED, timeout_s=5)
        await wait_status(repo, slow, Status.COMPLETED, timeout_s=5)
        assert offers_of(worker).taken == 1
        assert worker.jobs_complete == 1  # the second went through arq's poll, at once
    assert await started_events(repo, slow) == 1 and await started_events(repo, fast) == 1


async def test_two_idle_workers_one_takes_each_offer(
    settings: Settings, engine: AsyncEngine, pool: Any
) -> None:
    repo = Repository(engine)
    queue = ArqQueue(pool, settings.queue_name)
    async with running_worker(settings) as first, running_worker(settings) as second:
        await asyncio.sleep(0.3)
        ids = await one_by_one(repo, queue, 10)
        both = (offers_of(first), offers_of(second))
        await wait_until(lambda: not any(o.busy for o in both), "the offers finished")
        ran = sum(o.taken for o in both) + first.jobs_complete + second.jobs_complete
    assert ran == 10  # each job was run once, by one worker
    for execution_id in ids:
        assert await started_events(repo, execution_id) == 1


class Recorded:
    """A job's runs, as the worker would run them, with a chosen outcome."""

    def __init__(self, outcome: object = None, *, block: bool = False) -> None:
        self.outcome = outcome
        self.block = block
        self.calls: list[Sequence[str]] = []
        self.started = asyncio.Event()

    async def __call__(self, execution_ids: Sequence[str]) -> list[object]:
        self.calls.append(execution_ids)
        self.started.set()
        if self.block:
            await asyncio.Event().wait()
        return [self.outcome for _ in execution_ids]


async def offered_job(settings: Settings, pool: Any) -> tuple[str, bytes]:
    """A job written by ArqQueue, and the message of the call that offered it."""
    queue = ArqQueue(pool, settings.queue_name)
    async with pool.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(wakeups.wake_channel(settings.queue_name))
        await queue.enqueue(uuid.uuid4())
        message = await next_message(pubsub)
    offered = wakeups.decode_offer(message)
    assert offered is not None
    return offered[0], message


def starts(settings: Settings, pool: Any, run: Recorded) -> DirectStarts:
    return DirectStarts(
        pool, settings.queue_name, run, wake.Waker(), in_progress_ms=60_000, draining=lambda: False
    )


async def test_a_run_that_met_a_database_outage_hands_the_job_back_to_arq(
    settings: Settings, pool: Any
) -> None:
    job_id, message = await offered_job(settings, pool)
    run = Recorded(ConnectionRefusedError("database down"))  # an OSError: unavailable
    direct = starts(settings, pool, run)
    epoch = direct.wakes.epoch
    assert direct.offer(message)
    await wait_until(lambda: not direct.busy, "the offer ended")
    assert len(run.calls) == 1
    # Back in arq's hands: in the queue, not in progress, the poll woken to retry it.
    assert await pool.zscore(settings.queue_name, job_id) is not None
    assert await pool.exists(job_key_prefix + job_id)
    assert not await pool.exists(in_progress_key_prefix + job_id)
    assert direct.wakes.epoch == epoch + 1


async def test_a_run_that_failed_ends_the_job_and_is_logged(
    settings: Settings, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, message = await offered_job(settings, pool)
    direct = starts(settings, pool, Recorded(ValueError("a bug")))
    with caplog.at_level(logging.ERROR, logger="worker.runs"):
        assert direct.offer(message)
        await wait_until(lambda: not direct.busy, "the offer ended")
    assert any(r.message == "execution job failed" for r in caplog.records)
    assert await pool.zscore(settings.queue_name, job_id) is None
    assert not await pool.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id)


async def test_a_job_held_elsewhere_is_left_alone(settings: Settings, pool: Any) -> None:
    job_id, message = await offered_job(settings, pool)
    await pool.psetex(in_progress_key_prefix + job_id, 60_000, b"1")  # an arq worker has it
    run = Recorded()
    direct = starts(settings, pool, run)
    assert direct.offer(message)
    await wait_until(lambda: not direct.busy, "the offer ended")
    assert run.calls == [] and direct.taken == 0
    assert await pool.zscore(settings.queue_name, job_id) is not None  # untouched


async def test_shutdown_gives_a_job_in_hand_back_and_takes_no_more(
    settings: Settings, pool: Any
) -> None:
    job_id, message = await offered_job(settings, pool)
    run = Recorded(block=True)
    direct = starts(settings, pool, run)
    assert direct.offer(message)
    await asyncio.wait_for(run.started.wait(), 5)
    assert not direct.offer(message)  # one job at a time
    assert await pool.exists(in_progress_key_prefix + job_id)
    await direct.close()
    # As arq does with a job it cancels: back in the queue for another worker.
    assert not await pool.exists(in_progress_key_prefix + job_id)
    assert await pool.zscore(settings.queue_name, job_id) is not None
    assert not direct.offer(message)


async def test_a_draining_or_busy_worker_takes_no_offer(settings: Settings, pool: Any) -> None:
    _, message = await offered_job(settings, pool)
    draining = DirectStarts(
        pool, settings.queue_name, Recorded(), wake.Waker(), in_progress_ms=1, draining=lambda: True
    )
    assert not draining.offer(message)
    busy_waker = wake.Waker()
    busy_waker.jobs[1] = (1, time.monotonic())  # an arq worker of the loop holds a job
    busy = DirectStarts(pool, settings.queue_name, Recorded(), busy_waker, in_progress_ms=1)
    assert not busy.offer(message)
    assert not starts(settings, pool, Recorded()).offer(b"")  # a plain wake-up offers nothing
