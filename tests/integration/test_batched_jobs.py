"""Executions enqueued together share an arq job; a worker runs every one of them, once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.status import Status
from app.execution.queue import JOB_NAME, ArqQueue, redis_settings
from app.store.repository import Repository
from tests.integration.test_shutdown import three_steps
from tests.support.executions import insert_pending, wait_status
from tests.support.workers import running_worker


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(settings))
    yield pool
    await pool.aclose()


@pytest.fixture
def repo(engine: AsyncEngine) -> Repository:
    return Repository(engine)


async def jobs_in_queue(pool: ArqRedis, queue: ArqQueue) -> dict[str, tuple[str, ...]]:
    """Every waiting job's id and the execution ids it carries."""
    found = {}
    for member in await pool.zrange(queue.queue_name, 0, -1):
        job_id = member.decode()
        info = await Job(job_id, pool, _queue_name=queue.queue_name).info()
        assert info is not None and info.function == JOB_NAME
        found[job_id] = tuple(info.args)
    return found


async def test_concurrent_enqueues_share_jobs_and_each_execution_names_its_own(
    pool: ArqRedis, settings: Settings
) -> None:
    queue = ArqQueue(pool, settings.queue_name, batch_max=20)
    ids = [uuid.uuid4() for _ in range(30)]
    await asyncio.gather(*(queue.enqueue(i) for i in ids))

    jobs = await jobs_in_queue(pool, queue)
    carried = [i for args in jobs.values() for i in args]
    assert sorted(carried) == sorted(str(i) for i in ids)  # each one, once
    # The first goes alone at once (an idle queue waits for nobody); the others gather
    # behind it, at most 20 a job.
    assert len(jobs) <= 4 and all(len(args) <= 20 for args in jobs.values())
    for execution_id in ids:
        marker = await pool.get(f"{queue.queue_name}:job:{execution_id}")
        assert marker is not None and str(execution_id) in jobs[marker.decode()]
    assert await queue.live(ids) == set(ids)


async def test_a_bulk_enqueue_splits_by_priority_and_batch_size(
    pool: ArqRedis, settings: Settings
) -> None:
    queue = ArqQueue(pool, settings.queue_name, batch_max=20)
    urgent = [uuid.uuid4() for _ in range(3)]
    normal = [uuid.uuid4() for _ in range(45)]
    await queue.enqueue_many([(i, 0) for i in normal] + [(i, 5) for i in urgent])

    jobs = await jobs_in_queue(pool, queue)
    assert sorted(len(args) for args in jobs.values()) == [3, 5, 20, 20]
    first = next(iter(jobs.values()))  # the zset's order: the urgent job is picked first
    assert sorted(first) == sorted(str(i) for i in urgent)
    assert await queue.position(urgent[0]) == 1
    positions = {await queue.position(i) for i in normal}
    assert positions == {2, 3, 4}  # the place is the job's, shared by what it carries


async def test_a_worker_runs_every_execution_of_a_batched_job_once(
    settings: Settings, repo: Repository, pool: ArqRedis
) -> None:
    queue = ArqQueue(pool, settings.queue_name, batch_max=25)
    ids = [await insert_pending(repo, three_steps(10)) for _ in range(25)]
    await queue.enqueue_many([(i, 0) for i in ids])
    assert len(await jobs_in_queue(pool, queue)) == 1

    async with running_worker(settings) as worker:
        for execution_id in ids:
            record = await wait_status(repo, execution_id, Status.COMPLETED)
            assert {s.node_id: s.attempt for s in record.steps} == {"a": 1, "b": 1, "c": 1}
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    for execution_id in ids:
        started = [e for e in await repo.events_after(execution_id, 0) if e.type == "step.started"]
        assert len(started) == 3  # one runner each: nothing ran twice


async def test_sigterm_hands_over_every_execution_of_a_batched_job(
    settings: Settings, repo: Repository, pool: ArqRedis
) -> None:
    settings = settings.model_copy(
        update={"shutdown_grace_ms": 200, "durable_delay_threshold_ms": 60_000}
    )
    queue = ArqQueue(pool, settings.queue_name)
    ids = [await insert_pending(repo, three_steps(5_000)) for _ in range(5)]
    await queue.enqueue_many([(i, 0) for i in ids])
    async with running_worker(settings) as worker:
        for _ in range(500):
            records = [await repo.get_execution(i) for i in ids]
            running = [{s.node_id for s in r.steps if s.status == "running"} for r in records]
            if all(nodes == {"b"} for nodes in running):  # every one mid-way, in its delay
                break
            await asyncio.sleep(0.01)
        worker.handle_sig(signal.SIGTERM)
        for _ in range(500):
            if all(t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.01)

    for execution_id in ids:
        record = await repo.get_execution(execution_id)
        assert record.status == Status.PENDING and record.lease_owner is None
    assert await queue.live(ids) == set(ids)  # each one re-enqueued at once
    async with running_worker(settings):
        for execution_id in ids:
            record = await wait_status(repo, execution_id, Status.COMPLETED)
            assert record.steps[0].attempt == 1
