"""W1-W5 and W7: Turnout's API and workers as separate processes, each beside its baseline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.execution.queue import JOB_BATCH_MAX
from app.store.database import make_engine
from bench import client, workflows
from bench.config import Progress, Sizes
from bench.cpu import CpuMeter
from bench.nodes import fib
from bench.noop_worker import NOOP_JOB, counter_key, noop_queue
from bench.services import Namespace, Services
from bench.stats import Metric, Target


class Bench:
    """What every workload needs: the run's namespace, its processes, sizes and progress."""

    def __init__(self, ns: Namespace, services: Services, sizes: Sizes, progress: Progress):
        self.ns = ns
        self.services = services
        self.sizes = sizes
        self.progress = progress
        self._api: str | None = None
        self.api_pid = 0

    async def api(self) -> str:
        """The one Turnout API process of the run (started on first use)."""
        if self._api is None:
            proc, self._api = await self.services.start_api()
            self.api_pid = proc.proc.pid
        return self._api


def http_client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=60.0)


async def _samples(
    n: int, call: Callable[[], Awaitable[float]], into: list[float], scale: float = 1000.0
) -> None:
    for _ in range(n):
        into.append(await call() * scale)


async def w1_immediate(b: Bench) -> list[Metric]:
    """POST -> 200 of three transforms, interleaved with the bare insert-and-commit baseline."""
    base_metric = Metric("W1", "bare FastAPI insert+commit (baseline)", "ms")
    metric = Metric(
        "W1", "immediate, 3 steps: POST -> 200", "ms", baseline=base_metric,
        targets=(Target("ratio_max", 2.0, "<= 2x baseline"),),
    )  # fmt: skip
    await _create_baseline_table(b.ns.database_url)
    _, baseline_url = await b.services.start_api("baseline", app="bench.baseline_app:app")
    workflow = workflows.three_steps()
    async with http_client(await b.api()) as api, http_client(baseline_url) as bare:
        for repeat in range(b.sizes.repeat):
            b.progress(f"W1 repeat {repeat + 1}/{b.sizes.repeat}")
            for _ in range(b.sizes.w1_warmup):
                await client.run_immediate(api, workflow)
                await client.post_baseline(bare, workflow)
            # Interleaved, so the machine's drift hits both sides alike.
            for _ in range(b.sizes.w1_requests):
                metric.samples.append(await client.run_immediate(api, workflow) * 1000)
                base_metric.samples.append(await client.post_baseline(bare, workflow) * 1000)
    return [metric, base_metric]


async def _create_baseline_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, "
                    "created_at timestamptz NOT NULL DEFAULT now(), payload jsonb NOT NULL)"
                )
            )
    finally:
        await engine.dispose()


async def w2_queued_latency(b: Bench) -> list[Metric]:
    """POST -> `execution.completed` seen on the stream, one idle worker, one run at a time."""
    metric = Metric(
        "W2", "queued, 3 steps: POST -> completed (SSE)", "ms",
        targets=(Target("max", 15.0, "median <= 15 ms"),),
    )  # fmt: skip
    worker = await b.services.start_worker("worker-w2")
    workflow = workflows.three_steps()
    try:
        async with http_client(await b.api()) as api:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W2 repeat {repeat + 1}/{b.sizes.repeat}")
                for _ in range(b.sizes.w2_warmup):
                    await client.run_queued(api, workflow)
                await _samples(
                    b.sizes.w2_runs, lambda: client.run_queued(api, workflow), metric.samples
                )
    finally:
        await b.services.stop(worker)
    return [metric]


def fib_seconds(n: int = 10, rounds: int = 2000) -> float:
    """The steps' own compute: one fib(n), timed in this process (best of 5)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fib(n)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


async def w3_sequential(b: Bench, heartbeat_ms: int | None = None) -> list[Metric]:
    """40 sequential fib(10) steps in one queued run: total, and overhead per step."""
    label = "" if heartbeat_ms is None else f" (heartbeat {heartbeat_ms} ms)"
    total = Metric("W3", f"queued, 40 sequential fib(10) steps: total{label}", "ms")
    per_step = Metric(
        "W3", f"overhead per step{label}", "ms",
        targets=(Target("max", 5.0, "<= 5 ms"),) if heartbeat_ms is None else (),
    )  # fmt: skip
    env = None
    if heartbeat_ms is not None:
        env = b.ns.env(
            TURNOUT_HEARTBEAT_MS=str(heartbeat_ms), TURNOUT_LEASE_MS=str(heartbeat_ms * 3)
        )
    worker = await b.services.start_worker("worker-w3", env=env)
    workflow = workflows.fib_chain(40, 10)
    compute_s = 40 * fib_seconds()
    try:
        async with http_client(await b.api()) as api:
            await client.run_queued(api, workflow)  # warm-up
            for repeat in range(b.sizes.repeat):
                b.progress(f"W3{label} repeat {repeat + 1}/{b.sizes.repeat}")
                for _ in range(b.sizes.w3_runs):
                    elapsed = await client.run_queued(api, workflow)
                    total.samples.append(elapsed * 1000)
                    per_step.samples.append((elapsed - compute_s) / 40 * 1000)
    finally:
        await b.services.stop(worker)
    per_step.note = f"steps' own compute {compute_s * 1000:.2f} ms in all, subtracted"
    return [total, per_step]


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
        try:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W4 {metric.name} repeat {repeat + 1}/{b.sizes.repeat}")
                meter = CpuMeter(groups)
                metric.samples.append(await _turnout_rate(b, meter, per_request))
                metric.note = meter.per_unit_ms(metric.samples[-1] * b.sizes.w4_window_s / 2, "run")
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


async def _turnout_rate(b: Bench, meter: CpuMeter, per_request: int = 1) -> float:
    """Runs completed per second in the middle of a window where the queue is never empty.

    One run per request: `w4_submitters` clients post back to back. Bulk: BULK_SUBMITTERS
    clients post `per_request` runs at a time while the queue holds fewer than BULK_BACKLOG
    runs (enough that the worker never waits; more would only spend the CPU it needs). The
    queue holds jobs of up to JOB_BATCH_MAX runs, so the backlog is counted in jobs of it."""
    workflow = workflows.three_steps()
    window = b.sizes.w4_window_s
    redis = Redis.from_url(b.ns.redis_url)
    backlog_jobs = BULK_BACKLOG // min(per_request, JOB_BATCH_MAX)

    async def bulk(api: httpx.AsyncClient) -> None:
        if int(await redis.zcard(b.ns.queue_name)) >= backlog_jobs:
            await asyncio.sleep(0.005)
            return
        await client.submit_bulk(api, workflow, per_request)

    async with http_client(await b.api()) as api:
        started = time.time()
        if per_request > 1:
            load = _saturate(window, BULK_SUBMITTERS, lambda: bulk(api))
        else:
            load = _saturate(
                window, b.sizes.w4_submitters, lambda: client.submit_queued(api, workflow)
            )
        task = asyncio.create_task(load)
        await asyncio.sleep(window / 2)
        meter.start()
        await task
        meter.stop()
    await redis.aclose()
    # Count completions in the window's second half (the first fills the pipeline).
    lo, hi = started + window / 2, started + window
    engine = make_engine(b.ns.database_url)
    try:
        async with engine.connect() as conn:
            done = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM workflow_executions WHERE status = 'completed' "
                        "AND completed_at >= to_timestamp(:lo) AND completed_at < to_timestamp(:hi)"
                    ),
                    {"lo": lo, "hi": hi},
                )
            ).scalar_one()
            # Drop the backlog so the next measurement starts from an empty queue.
            await conn.execute(
                text("UPDATE workflow_executions SET status = 'cancelled' WHERE status = 'pending'")
            )
            await conn.commit()
    finally:
        await engine.dispose()
    await _clear_queue(b.ns.redis_url, b.ns.queue_name)
    return float(done) / (hi - lo)


BULK_SUBMITTERS = 2
BULK_BACKLOG = 2000


async def _clear_queue(redis_url: str, queue: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.delete(queue)
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
            await pool.delete(queue)
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


async def w5_fan_out(b: Bench) -> list[Metric]:
    """One queued run: a foreach of 1,000 transform items, 50 at a time."""
    metric = Metric("W5", f"foreach of {b.sizes.w5_items} items, concurrency 50", "ms")
    worker = await b.services.start_worker("worker-w5")
    workflow = workflows.fan_out(b.sizes.w5_items, 50)
    payload = {"items": list(range(b.sizes.w5_items))}
    try:
        async with http_client(await b.api()) as api:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W5 repeat {repeat + 1}/{b.sizes.repeat}")
                metric.samples.append(await client.run_queued(api, workflow, payload) * 1000)
    finally:
        await b.services.stop(worker)
    return [metric]


def _pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    return str(candidates[-1]) if candidates else None


async def w7_commit_ceiling(b: Bench) -> list[Metric]:
    """pgbench: single-row INSERT transactions per second, 1 and 8 clients (reference only)."""
    binary = _pgbench()
    if binary is None:
        return [Metric("W7", "pgbench not found: skipped", "tps")]
    url = make_url(b.ns.database_url)
    engine = make_engine(b.ns.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_tps (v int)"))
    finally:
        await engine.dispose()
    metrics = []
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_tps (v) VALUES (1);\n")
    try:
        for clients in (1, 8):
            metric = Metric("W7", f"pgbench single-row insert, {clients} client(s)", "tps")
            for repeat in range(b.sizes.repeat):
                b.progress(f"W7 {clients} client(s) repeat {repeat + 1}/{b.sizes.repeat}")
                metric.samples.append(
                    await asyncio.to_thread(_run_pgbench, binary, url, script.name, clients, b)
                )
            metrics.append(metric)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(script.name)
    return metrics


def _run_pgbench(binary: str, url: Any, script: str, clients: int, b: Bench) -> float:
    argv = [
        binary, "-n", "-f", script, "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(b.sizes.w7_seconds), "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
        "-U", url.username or "postgres", url.database,
    ]  # fmt: skip
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    for line in out.splitlines():
        if line.startswith("tps ="):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(f"pgbench printed no tps:\n{out}")
