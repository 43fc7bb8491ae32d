"""The reconciler against real Postgres and Redis: what it recovers, and what it leaves alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from arq import create_pool
from arq.constants import in_progress_key_prefix, job_key_prefix
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.engine.status import Status
from app.execution.queue import ArqQueue, InProcessQueue, redis_settings
from app.execution.reconciler import Reconciler
from app.store.repository import Repository
from tests.support.executions import insert_pending, wait_status, wait_until
from tests.support.workers import running_worker

TWO_STEPS = {
    "nodes": [
        {"id": "a", "type": "transform", "params": {"v": 1}},
        {"id": "b", "type": "transform", "params": {"v": "{{ a.v + 1 }}"}},
    ]
}


@pytest.fixture
def rsettings(settings: Settings) -> Settings:
    # No grace for pending rows: the tests decide what is orphaned, not the clock.
    return settings.model_copy(update={"reconcile_pending_grace_ms": 0})


@pytest.fixture
def repo(engine: AsyncEngine) -> Repository:
    return Repository(engine)


@pytest.fixture
async def queue(rsettings: Settings) -> AsyncIterator[ArqQueue]:
    pool = await create_pool(redis_settings(rsettings))
    yield ArqQueue(pool, rsettings.queue_name)
    await pool.aclose()


async def queued_ids(queue: ArqQueue) -> list[str]:
    members = await queue.pool.zrange(queue.queue_name, 0, -1)
    return [m.decode().split(":")[0] for m in members]


async def lease_expired(repo: Repository, execution_id: uuid.UUID) -> None:
    """Wait until the execution holds no live lease (a claim of 1 ms runs out at once)."""

    async def expired() -> bool:
        record = await repo.get_execution(execution_id, steps=False)
        return record.lease_expires_at is None or record.lease_expires_at < utcnow()

    await wait_until(expired, f"the lease of {execution_id} expired")


async def forget_jobs(queue: ArqQueue) -> None:
    """Delete this test's queue, its jobs and their markers, and nothing else: the Redis
    server is shared, so nothing is flushed wholesale."""
    job_ids = [m.decode() for m in await queue.pool.zrange(queue.queue_name, 0, -1)]
    markers = [key async for key in queue.pool.scan_iter(match=f"{queue.queue_name}:job:*")]
    keys = [job_key_prefix + j for j in job_ids] + [in_progress_key_prefix + j for j in job_ids]
    await queue.pool.delete(queue.queue_name, *keys, *markers)
    assert await queue.pool.exists(queue.queue_name, *keys, *markers) == 0


async def test_pending_without_a_job_is_enqueued_once(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    orphan = await insert_pending(repo, TWO_STEPS)  # committed, but its enqueue never happened
    queued = await insert_pending(repo, TWO_STEPS)
    await queue.enqueue(queued)
    reconciler = Reconciler(rsettings, repo, queue)

    assert await reconciler.run_once() == 1
    assert sorted(await queued_ids(queue)) == sorted([str(orphan), str(queued)])
    await queue.pool.delete(f"{rsettings.queue_name}:lead:reconciler")
    # Its job now waits in the queue: the next pass leaves it alone.
    assert await reconciler.run_once() == 0
    assert len(await queued_ids(queue)) == 2


async def test_jobs_lost_with_redis_are_recovered_and_run(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    ids = [await insert_pending(repo, TWO_STEPS) for _ in range(5)]
    for execution_id in ids:
        await queue.enqueue(execution_id)
    await forget_jobs(queue)  # what a restart without persistence does to the queue
    assert await Reconciler(rsettings, repo, queue).run_once() == 5
    async with running_worker(rsettings):
        for execution_id in ids:
            await wait_status(repo, execution_id, Status.COMPLETED)


async def test_pending_whose_job_a_dead_worker_took_is_recovered(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    execution_id = await insert_pending(repo, TWO_STEPS)
    await queue.enqueue(execution_id)
    # A worker took the job (arq marks it in progress) and died before claiming it.
    job_id = (await queue.pool.get(f"{rsettings.queue_name}:job:{execution_id}")).decode()
    await queue.pool.set(in_progress_key_prefix + job_id, b"1", px=60_000)
    assert await Reconciler(rsettings, repo, queue).run_once() == 1


async def test_running_with_an_expired_lease_is_taken_over(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    dead = await insert_pending(repo, TWO_STEPS)
    alive = await insert_pending(repo, TWO_STEPS)
    assert await repo.claim(dead, "dead-worker", 1, ("execution.started", {})) is not None
    assert await repo.claim(alive, "live-worker", 60_000, ("execution.started", {})) is not None
    await lease_expired(repo, dead)

    assert await Reconciler(rsettings, repo, queue).run_once() == 1
    assert await queued_ids(queue) == [str(dead)]
    async with running_worker(rsettings):
        await wait_status(repo, dead, Status.COMPLETED)
    record = await repo.get_execution(dead)
    assert [s.attempt for s in record.steps] == [1, 1]
    assert (await repo.get_execution(alive, steps=False)).status == Status.RUNNING


async def test_a_cancel_asked_of_a_dead_runner_is_applied_by_the_next(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    execution_id = await insert_pending(repo, TWO_STEPS)
    assert await repo.claim(execution_id, "dead-worker", 1, ("execution.started", {}))
    assert await repo.request_control(execution_id, "cancel", "tester")
    await lease_expired(repo, execution_id)
    assert await Reconciler(rsettings, repo, queue).run_once() == 1
    async with running_worker(rsettings):
        await wait_status(repo, execution_id, Status.CANCELLED)


async def test_terminal_paused_and_fresh_rows_are_never_touched(
    settings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    fresh = await insert_pending(
        repo, TWO_STEPS
    )  # pending for less than the grace: its enqueue may follow
    done = await insert_pending(repo, TWO_STEPS)
    assert await repo.claim(done, "w", 1, ("execution.started", {}))
    await repo.transition(done, Status.COMPLETED, ("execution.completed", {}))
    paused = await insert_pending(repo, TWO_STEPS)
    await repo.transition(paused, Status.PAUSED, ("execution.paused", {}))
    await lease_expired(repo, done)

    assert await Reconciler(settings, repo, queue).run_once() == 0
    assert await queued_ids(queue) == []
    assert (await repo.get_execution(fresh, steps=False)).status == Status.PENDING


async def test_one_pass_per_interval_across_processes(
    rsettings: Settings, repo: Repository, queue: ArqQueue
) -> None:
    await insert_pending(repo, TWO_STEPS)
    first, second = Reconciler(rsettings, repo, queue), Reconciler(rsettings, repo, queue)
    counts = await asyncio.gather(first.run_once(), second.run_once())
    assert sorted(counts) == [0, 1]
    assert len(await queued_ids(queue)) == 1


async def test_embedded_queue_knows_what_it_holds(rsettings: Settings, repo: Repository) -> None:
    handled: list[uuid.UUID] = []

    async def handler(execution_id: uuid.UUID) -> None:
        handled.append(execution_id)

    queue = InProcessQueue(handler, concurrency=1)
    waiting = await insert_pending(repo, TWO_STEPS)
    orphan = await insert_pending(repo, TWO_STEPS)
    await queue.enqueue(waiting)
    assert await queue.live([waiting, orphan]) == {waiting}
    assert await Reconciler(rsettings, repo, queue).run_once() == 1
    queue.start()
    try:
        await wait_until(lambda: len(handled) == 2, "both executions handled")
    finally:
        await queue.close()
    assert sorted(handled) == sorted([waiting, orphan])
    assert await queue.live([waiting, orphan]) == set()
