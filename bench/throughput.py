"""W4: completed 3-step runs per second (one per request, and bulk), beside the rate at
which one arq worker drains no-op jobs from a pre-filled queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from sqlalchemy import text

from app.execution.queue import JOB_BATCH_MAX, drop_queue
from app.store.database import make_engine
from app.tasks import stop
from bench import client, rawhttp, workflows
from bench.cpu import CpuMeter
from bench.noop_worker import NOOP_JOB, counter_key, noop_queue
from bench.stats import Metric, Target
from bench.workloads import Bench, http_client

# W4's variants: (workers, runs per request); a bulk variant posts to POST /workflow/runs.
BULK_RUNS = 100
W4_VARIANTS = ((1, 1), (1, BULK_RUNS), (2, 1))


async def w4_throughput(b: Bench) -> list[Metric]:
    """Completed 3-step runs per second (1 and 2 workers; one run per request, and bulk)
    against no-op arq jobs per second."""
    raw = Metric("W4", "raw arq no-op jobs/s, 1 worker (baseline)", "jobs/s")
    metrics = [raw]
    raw.samples, raw.note = await _raw_arq_rate(b)
    for workers, per_request in W4_VARIANTS:
        bulk = per_request > 1
        name = f"3-step runs/s, 1 API + {workers} worker{'s' * (workers > 1)}"
        target = (
            Target("ratio_min", 0.5, ">= 0.5x raw arq")
            if bulk
            else Target("ratio_min", 0.25, ">= 0.25x raw arq")
        )
        metric = Metric(
            "W4", name + (", bulk" if bulk else ""), "runs/s", baseline=raw, targets=(target,)
        )
        procs = [await b.services.start_worker(f"worker-w4-{workers}-{i}") for i in range(workers)]
        await b.api()
        groups: dict[str, list[int] | str] = {
            "client": [os.getpid()], "API": [b.api_pid], "workers": [p.proc.pid for p in procs],
            "Postgres": "postgres", "Redis": "redis-server",
        }  # fmt: skip
        load = (
            f"{BULK_SUBMITTERS} clients, {per_request} runs a request"
            if bulk
            else f"{b.sizes.w4_submitters} clients"
        )
        try:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W4 {metric.name} repeat {repeat + 1}/{b.sizes.repeat}")
                meter = CpuMeter(groups)
                metric.samples.append(await _turnout_rate(b, meter, per_request))
                cpu = meter.per_unit_ms(metric.samples[-1] * b.sizes.w4_window_s / 2, "run")
                metric.note = f"{load}; {cpu}"
        finally:
            for proc in procs:
                await b.services.stop(proc)
        metrics.append(metric)
    return metrics


async def _saturate(window_s: float, submitters: int, submit: Callable[[], Awaitable[Any]]) -> None:
    """Keep `submitters` loops submitting for `window_s`."""
    deadline = time.monotonic() + window_s

    async def loop() -> None:
        while time.monotonic() < deadline:
            await submit()

    await asyncio.gather(*(loop() for _ in range(submitters)))


async def _post_runs(
    base: str, window_s: float, submitters: int, workflow: Any, gate: asyncio.Event | None = None
) -> None:
    """`submitters` clients post queued runs back to back for `window_s`, each on its own
    kept-alive connection, with the lean client (bench/rawhttp.py): every answer must be a
    202 with an execution id. With a `gate`, a client posts only while it is set."""
    body = {"workflow": workflow, "input": {"x": 1}, "mode": "queued"}
    request = rawhttp.post_json(base, "/workflow/run", body)
    deadline = time.monotonic() + window_s

    async def loop() -> None:
        conn = await rawhttp.RawConnection.open(base)
        try:
            while time.monotonic() < deadline:
                if gate is not None and not gate.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gate.wait(), deadline - time.monotonic())
                    continue
                status, answer = await conn.request(request)
                if status != 202 or "executionId" not in json.loads(answer):
                    raise client.RunFailed(f"queued run answered {status}: {answer[:500]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(loop() for _ in range(submitters)))


async def _hold_backlog(database_url: str, backlog: int, gate: asyncio.Event) -> None:
    """Keep `gate` set while fewer than `backlog` runs wait to be claimed (`pending`),
    read every BACKLOG_POLL_S: the clients then post as fast as the service completes runs
    (a steady state), not faster, as the bulk variant's clients do (BULK_BACKLOG)."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            while True:
                waiting = (await conn.execute(PENDING_RUNS)).scalar_one()
                await conn.rollback()
                if waiting < backlog:
                    gate.set()
                else:
                    gate.clear()
                await asyncio.sleep(BACKLOG_POLL_S)
    finally:
        await engine.dispose()


async def _turnout_rate(
    b: Bench,
    meter: CpuMeter,
    per_request: int = 1,
    backlog: int = 0,
    seen: dict[str, int] | None = None,
) -> float:
    """Runs completed per second in the middle of a window where the queue is never empty.

    One run per request: `w4_submitters` clients post back to back (the lean client, see
    bench/rawhttp.py: httpx's own CPU would be taken from the service). Bulk: BULK_SUBMITTERS
    clients post `per_request` runs at a time while the queue holds fewer than BULK_BACKLOG
    runs (enough that the worker never waits; more would only spend the CPU it needs). The
    queue holds jobs of up to JOB_BATCH_MAX runs, so the backlog is counted in jobs of it.
    With `backlog`, the one-run-per-request clients hold off while that many runs are
    pending (`_hold_backlog`); without, they post regardless, and the API spends what
    the worker has no time for on a backlog that grows all window. `seen` gets the runs
    created in the second half (`created`) and those still pending at its end
    (`backlog`)."""
    workflow = workflows.three_steps()
    window = b.sizes.w4_window_s
    redis = Redis.from_url(b.ns.redis_url)
    backlog_jobs = BULK_BACKLOG // min(per_request, JOB_BATCH_MAX)

    async def bulk(api: httpx.AsyncClient) -> None:
        if int(await redis.zcard(b.ns.queue_name)) >= backlog_jobs:
            await asyncio.sleep(0.005)
            return
        await client.submit_bulk(api, workflow, per_request)

    base = await b.api()
    gate = asyncio.Event() if backlog and per_request == 1 else None
    holder: asyncio.Task[None] | None = None
    async with http_client(base) as api:
        started = time.time()
        if per_request > 1:
            load = _saturate(window, BULK_SUBMITTERS, lambda: bulk(api))
        else:
            if gate is not None:
                holder = asyncio.create_task(_hold_backlog(b.ns.database_url, backlog, gate))
            load = _post_runs(base, window, b.sizes.w4_submitters, workflow, gate)
        task = asyncio.create_task(load)
        await asyncio.sleep(window / 2)
        meter.start()
        await task
        meter.stop()
        await stop(holder)
    await redis.aclose()
    # Count completions in the window's second half (the first fills the pipeline).
    lo, hi = started + window / 2, started + window
    engine = make_engine(b.ns.database_url)
    try:
        async with engine.connect() as conn:
            done = await _count_in(conn, "completed_at", lo, hi, "completed")
            if seen is not None:
                seen["backlog"] = (await conn.execute(PENDING_RUNS)).scalar_one()
                seen["created"] = await _count_in(conn, "created_at", lo, hi)
            # Drop the backlog so the next measurement starts from an empty queue: its rows
            # locked in id order, as the worker's claims lock theirs (no deadlock).
            await conn.execute(
                text(
                    "UPDATE workflow_executions SET status = 'cancelled' WHERE id IN ("
                    "SELECT id FROM workflow_executions WHERE status = 'pending' ORDER BY id"
                    " FOR UPDATE) AND status = 'pending'"
                )
            )
            await conn.commit()
    finally:
        await engine.dispose()
    await _clear_queue(b.ns.redis_url, b.ns.queue_name)
    return float(done) / (hi - lo)


async def _count_in(conn: Any, column: str, lo: float, hi: float, status: str | None = None) -> int:
    """Runs whose `column` falls in [lo, hi) (epoch seconds), of `status` if given."""
    sql = (
        f"SELECT count(*) FROM workflow_executions WHERE {column} >= to_timestamp(:lo)"
        f" AND {column} < to_timestamp(:hi)" + (" AND status = :status" if status else "")
    )
    return int((await conn.execute(text(sql), {"lo": lo, "hi": hi, "status": status})).scalar_one())


BULK_SUBMITTERS = 2
BULK_BACKLOG = 2000
BACKLOG_POLL_S = 0.05
PENDING_RUNS = text("SELECT count(*) FROM workflow_executions WHERE status = 'pending'")


async def _clear_queue(redis_url: str, queue: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await drop_queue(redis, queue)  # with its jobs' keys, outside the namespace
    finally:
        await redis.aclose()


async def _raw_arq_rate(b: Bench) -> tuple[list[float], str]:
    """No-op jobs/s one worker with Turnout's settings drains from a queue that never runs dry.

    The queue is filled first, in pipelines (writing jobs as `enqueue_job` would), so the
    rate is the worker's and not the enqueuing client's."""
    queue = noop_queue(b.ns.queue_name)
    worker = await b.services.start_worker(
        "worker-noop",
        settings="bench.noop_worker.WorkerSettings",
        health_key=f"{queue}:health-check",
    )
    pool = await create_pool(RedisSettings.from_dsn(b.ns.redis_url))
    groups: dict[str, list[int] | str] = {
        "worker": [worker.proc.pid], "Redis": "redis-server",
    }  # fmt: skip
    meter = CpuMeter(groups)
    rates: list[float] = []
    note = ""
    dry = 0
    key = counter_key(b.ns.queue_name)
    window = b.sizes.w4_window_s
    try:
        for repeat in range(b.sizes.repeat):
            b.progress(f"W4 raw arq repeat {repeat + 1}/{b.sizes.repeat}")
            await _fill(pool, queue, int(RAW_FILL_PER_S * window))
            await asyncio.sleep(0.5)  # the worker is up to speed
            first, t0 = int(await pool.get(key) or 0), time.monotonic()
            meter.start()
            await asyncio.sleep(window / 2)
            meter.stop()
            last, t1 = int(await pool.get(key) or 0), time.monotonic()
            # The rate is the worker's only while it never waits for a job to come due. Every
            # job is due from the fill on, so due jobs left at the end were there throughout.
            if await due_jobs(pool, queue) == 0:
                dry += 1
            else:
                rates.append((last - first) / (t1 - t0))
                note = meter.per_unit_ms(last - first, "job")
            await drop_queue(pool, queue)
    finally:
        await pool.aclose()
        await b.services.stop(worker)
    if dry:
        note = (
            f"INVALID: {dry} of {b.sizes.repeat} samples ran out of due jobs (dropped); "
            "raise RAW_FILL_PER_S"
        )
    return rates, note


# Jobs put in the queue per second of window: above what one worker can drain.
RAW_FILL_PER_S = 4000


async def _fill(pool: Any, queue: str, count: int) -> None:
    """`count` no-op jobs, written as `enqueue_job` would, every one due now: the worker
    never waits for a score to come due, so the rate is its own."""
    now_ms = int(time.time() * 1000)
    for start in range(0, count, 1000):
        async with pool.pipeline(transaction=False) as pipe:
            for n in range(start, min(count, start + 1000)):
                job_id = f"noop-{now_ms}-{n}"
                pipe.psetex(
                    job_key_prefix + job_id, 600_000, serialize_job(NOOP_JOB, (), {}, None, now_ms)
                )
                pipe.zadd(queue, {job_id: now_ms})
            await pipe.execute()


async def due_jobs(pool: Any, queue: str) -> int:
    """Jobs in `queue` whose score has come: what a worker can take right now."""
    return int(await pool.zcount(queue, "-inf", int(time.time() * 1000)))
