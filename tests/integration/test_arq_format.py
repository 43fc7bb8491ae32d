"""The queue writes arq's job format by hand (one round trip instead of three): pinned here
against the installed arq, which must read it back and run it as its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import Worker, func

from app.config import Settings
from app.execution.queue import JOB_NAME, PRIORITY_STEP_MS, ArqQueue, redis_settings


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(redis_settings(settings))
    yield pool
    await pool.aclose()


async def job_of(pool: ArqRedis, queue: ArqQueue, execution_id: uuid.UUID) -> Job:
    job_id = await pool.get(f"{queue.queue_name}:job:{execution_id}")
    assert job_id is not None
    return Job(job_id.decode(), pool, _queue_name=queue.queue_name)


async def test_a_hand_written_job_reads_back_through_arqs_own_job_info(
    pool: ArqRedis, settings: Settings
) -> None:
    queue = ArqQueue(pool, settings.queue_name)
    execution_id = uuid.uuid4()
    before_ms = time.time() * 1000
    await queue.enqueue(execution_id, priority=3)

    job = await job_of(pool, queue, execution_id)
    info = await job.info()
    assert info is not None
    assert info.function == JOB_NAME
    assert info.args == (str(execution_id),)
    assert info.kwargs == {}
    assert info.job_try is None
    after_ms = time.time() * 1000
    assert int(before_ms) <= info.enqueue_time.timestamp() * 1000 <= after_ms
    # Priority 3: scored three steps ahead of now, so picked before what waits already.
    assert info.score is not None
    assert int(before_ms) - 3 * PRIORITY_STEP_MS <= info.score <= after_ms - 3 * PRIORITY_STEP_MS
    assert await job.status() == JobStatus.queued


async def test_a_real_arq_worker_runs_a_hand_written_job(
    pool: ArqRedis, settings: Settings
) -> None:
    queue = ArqQueue(pool, settings.queue_name)
    execution_id = uuid.uuid4()
    ran: list[str] = []

    async def run_execution(ctx: dict[str, object], execution: str) -> None:
        ran.append(execution)

    await queue.enqueue(execution_id)
    worker = Worker(
        functions=[func(run_execution, name=JOB_NAME)],
        redis_pool=pool,
        queue_name=settings.queue_name,
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=0,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    assert ran == [str(execution_id)]
    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
