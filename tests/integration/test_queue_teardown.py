"""Teardowns delete a namespace's queues with arq's keys of their jobs, which live outside
the namespace (arq's global `arq:job:` ... prefixes), and nothing else."""

from __future__ import annotations

import secrets
import uuid

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from app.config import Settings
from app.execution.queue import ArqQueue, arq_pool, drop_queue, purge_namespace


async def test_purging_a_namespace_deletes_its_jobs_keys_and_no_one_elses(
    settings: Settings,
) -> None:
    pool = arq_pool(settings)
    prefix = f"{settings.key_prefix}:teardown-{secrets.token_hex(3)}"
    queue = ArqQueue(pool, f"{prefix}:queue")
    other = f"someone-else-{secrets.token_hex(6)}"  # another program's arq job
    try:
        for _ in range(3):
            await queue.enqueue(uuid.uuid4())
        await queue.enqueue_many([(uuid.uuid4(), 0) for _ in range(30)])  # two batched jobs
        job_ids = [j.decode() for j in await pool.zrange(queue.queue_name, 0, -1)]
        assert len(job_ids) == 5
        held = job_ids[0]  # taken by a worker that then stopped
        await pool.psetex(in_progress_key_prefix + held, 60_000, b"1")
        await pool.incr(retry_key_prefix + held)
        await pool.psetex(job_key_prefix + other, 60_000, b"x")
        await pool.psetex(f"{prefix}:counter", 60_000, b"1")

        deleted = await purge_namespace(pool, prefix)

        assert deleted >= 1 + 5 + 2 + 33 + 1  # queue, jobs, held keys, markers, counter
        assert [k async for k in pool.scan_iter(match=f"{prefix}*")] == []
        for job_id in job_ids:
            assert not await pool.exists(
                job_key_prefix + job_id,
                in_progress_key_prefix + job_id,
                retry_key_prefix + job_id,
            )
        assert await pool.exists(job_key_prefix + other)  # not ours: untouched
    finally:
        await pool.delete(job_key_prefix + other)
        await pool.aclose()


async def test_dropping_a_queue_takes_its_jobs_with_it(settings: Settings) -> None:
    pool = arq_pool(settings)
    queue = ArqQueue(pool, f"{settings.key_prefix}:drop-{secrets.token_hex(3)}:queue")
    try:
        await queue.enqueue(uuid.uuid4())
        (job_id,) = [j.decode() for j in await pool.zrange(queue.queue_name, 0, -1)]
        assert await drop_queue(pool, queue.queue_name) == 2  # the queue and the job
        assert not await pool.exists(queue.queue_name, job_key_prefix + job_id)
    finally:
        await pool.aclose()
