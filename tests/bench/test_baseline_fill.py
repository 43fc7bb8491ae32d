"""W4's raw arq baseline: every job it fills is due at once, so the worker never waits."""

from __future__ import annotations

from arq import create_pool
from arq.constants import job_key_prefix

from app.config import Settings
from app.execution.queue import redis_settings
from bench.throughput import _fill, due_jobs


async def test_the_baseline_fill_makes_every_job_due_now(settings: Settings) -> None:
    queue = f"{settings.queue_name}:noop"
    pool = await create_pool(redis_settings(settings))
    try:
        await _fill(pool, queue, 2500)
        # Scored one per millisecond, only a job or two would be due now: the worker would
        # drain about 1,000 jobs/s whatever its speed.
        assert await due_jobs(pool, queue) == 2500
    finally:
        job_ids = [j.decode() for j in await pool.zrange(queue, 0, -1)]
        await pool.delete(queue, *(job_key_prefix + j for j in job_ids))
        await pool.aclose()
