"""Queue adapters: arq on Redis, or an in-process worker when there is no Redis."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from arq.connections import ArqRedis, RedisSettings
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_job

from app.config import Settings
from app.events.redis_writes import RedisWrites
from app.execution.wakeups import WakeCalls
from app.store.records import MAX_PRIORITY

log = logging.getLogger(__name__)

JOB_NAME = "run_execution"


# arq orders jobs by score (a time in ms) and has no priority: a higher priority is encoded as
# an earlier score, one step per level, so it is picked before everything already waiting.
PRIORITY_STEP_MS = 1_000_000_000
JOB_EXPIRES = timedelta(days=7)
JOB_EXPIRES_MS = JOB_EXPIRES.total_seconds() * 1000
# Executions enqueued together (one bulk request, or concurrent submissions) share an arq job
# of up to this many: arq's own cost (poll, in-progress key, job read, cleanup) is per job.
JOB_BATCH_MAX = 20


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings. Without REDIS_URL, arq's own default (localhost) applies, as
    `arq` users expect."""
    return RedisSettings.from_dsn(settings.redis_url or "redis://localhost:6379")


def arq_pool(settings: Settings) -> ArqRedis:
    """arq's pool, built without connecting (it connects on first use): a process whose Redis
    is down at startup starts degraded, as it runs degraded later."""
    config = redis_settings(settings)
    return ArqRedis(
        host=config.host,
        port=config.port,
        db=config.database,
        username=config.username,
        password=config.password,
        ssl=config.ssl,
        socket_connect_timeout=config.conn_timeout,
        encoding="utf8",
    )


@dataclass(frozen=True, slots=True)
class JobWrite:
    """One enqueue (or one bulk request's): (execution id, priority) pairs, due now unless
    deferred to `defer_ms` (a Unix time in ms)."""

    jobs: tuple[tuple[UUID, int], ...]
    defer_ms: float | None = None


def job_score_ms(now_ms: float, priority: int) -> float:
    return now_ms - max(0, min(priority, MAX_PRIORITY)) * PRIORITY_STEP_MS


class ExecutionQueue(Protocol):
    """Enqueues execution ids (never payloads), after their row is committed."""

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None: ...

    def ask_enqueue(self, jobs: Sequence[tuple[UUID, int]]) -> Awaitable[None]:
        """Enqueues due now ((execution id, priority) pairs), taken before the caller's next
        await: they go no later than the Redis writes the caller asks next (its events).
        Await it for the outcome."""
        ...

    async def enqueue_many(self, jobs: Sequence[tuple[UUID, int]]) -> None:
        """Enqueue many (execution id, priority) at once (a bulk submission)."""
        ...

    async def live(self, execution_ids: Sequence[UUID]) -> set[UUID]:
        """The ids that have a job waiting to be picked up (so need no re-enqueue)."""
        ...

    async def lead(self, name: str, ttl_ms: int) -> bool:
        """True for one caller per `ttl_ms` across every process sharing the queue."""
        ...

    async def position(self, execution_id: UUID) -> int | None:
        """1 for the next job to be picked; None when no job of it waits."""
        ...


class ArqQueue:
    """arq on Redis. Every enqueue gets a fresh job id: a kept or running job with the same id
    would swallow a legitimate re-enqueue (resume, wake-up), and the claim dedupes anyway.

    A job carries one or more execution ids (`run_execution(*ids)`): enqueues that arrive
    while another is in flight, and the runs of one bulk request, share a job of up to
    `batch_max`. `{queue}:job:{execution id}` remembers the latest job of each execution, so
    the reconciler can tell an execution whose job waits in the queue from one whose job was
    lost (Redis restarted, the enqueue failed) or taken by a worker that died.

    Jobs are written through `writes`, the process's one pipeline at a time, which they
    share with the event publishes (app/events/redis_writes.py)."""

    atomic = True  # a job, its place in the queue and its markers: all or nothing

    def __init__(
        self,
        pool: Any,
        queue_name: str,
        *,
        batch_max: int = JOB_BATCH_MAX,
        writes: RedisWrites | None = None,
    ) -> None:
        self.pool = pool
        self.queue_name = queue_name
        self.serializer = pool.job_serializer
        self.batch_max = max(1, batch_max)
        self.writes = writes or RedisWrites(pool)
        self.wakes = WakeCalls(queue_name, self.writes)

    def _marker(self, execution_id: UUID) -> str:
        return f"{self.queue_name}:job:{execution_id}"

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None:
        """One round trip: the job as arq stores it, its place in the queue, and the markers.

        arq's `enqueue_job` first WATCHes and checks the job id (two more round trips) to
        dedupe; a fresh random job id cannot collide, so the job is written directly, in
        arq's own format, in one MULTI/EXEC, shared with what else is asked meanwhile."""
        defer_ms = None if defer_until is None else defer_until.timestamp() * 1000
        await self.writes.submit(self, JobWrite(((execution_id, priority),), defer_ms))

    def ask_enqueue(self, jobs: Sequence[tuple[UUID, int]]) -> Awaitable[None]:
        return self.writes.ask(self, JobWrite(tuple(jobs)))

    async def enqueue_many(self, jobs: Sequence[tuple[UUID, int]]) -> None:
        """Every job in one MULTI/EXEC (one round trip)."""
        if jobs:
            await self.writes.submit(self, JobWrite(tuple(jobs)))

    def add(self, pipe: Any, writes: Sequence[JobWrite]) -> None:
        """Jobs of up to `batch_max` executions of one priority (due now), or of one write
        (deferred)."""
        now_ms = time.time() * 1000
        by_priority: dict[int, list[UUID]] = {}
        for write in writes:
            if write.defer_ms is not None:
                self._add_jobs(pipe, [i for i, _ in write.jobs], write.defer_ms)
                continue
            for execution_id, priority in write.jobs:
                by_priority.setdefault(priority, []).append(execution_id)
        due: list[tuple[str, list[str]]] = []
        for priority, ids in by_priority.items():
            due += self._add_jobs(pipe, ids, job_score_ms(now_ms, priority))
        if writes:
            # Wake the workers rather than leave the job to their next poll: one due now
            # starts (offered, when it is the only one, to an idle worker to take at once:
            # worker/direct.py), a deferred one sets when an idle worker reads the queue
            # next (worker/wake.py); published at EXEC, after the job is in the queue.
            self.wakes.call(pipe, due[0] if len(due) == 1 else None)

    def _add_jobs(
        self, pipe: Any, execution_ids: Sequence[UUID], score: float
    ) -> list[tuple[str, list[str]]]:
        """Jobs of up to `batch_max` executions each: (job id, execution ids) of each."""
        return [
            self._add(pipe, execution_ids[start : start + self.batch_max], score)
            for start in range(0, len(execution_ids), self.batch_max)
        ]

    def _add(self, pipe: Any, execution_ids: Sequence[UUID], score: float) -> tuple[str, list[str]]:
        now_ms = time.time() * 1000
        job_id = f"{execution_ids[0]}:{uuid4().hex[:12]}"
        args = tuple(str(i) for i in execution_ids)
        job = serialize_job(JOB_NAME, args, {}, None, int(now_ms), serializer=self.serializer)
        ttl_ms = int(max(0.0, score - now_ms) + JOB_EXPIRES_MS)
        pipe.psetex(job_key_prefix + job_id, ttl_ms, job)
        pipe.zadd(self.queue_name, {job_id: int(score)})
        for execution_id in execution_ids:
            pipe.psetex(self._marker(execution_id), ttl_ms, job_id)
        return job_id, list(args)

    async def live(self, execution_ids: Sequence[UUID]) -> set[UUID]:
        if not execution_ids:
            return set()
        job_ids = await self.pool.mget([self._marker(i) for i in execution_ids])
        known = [(i, j.decode()) for i, j in zip(execution_ids, job_ids, strict=True) if j]
        if not known:
            return set()
        async with self.pool.pipeline(transaction=False) as pipe:
            for _, job_id in known:
                pipe.exists(job_key_prefix + job_id)
                pipe.exists(in_progress_key_prefix + job_id)
            found = await pipe.execute()
        # Waiting in the queue: the job exists and no worker has taken it. A job in progress
        # is not enough: its worker may have died (its lease tells; the caller checked it).
        return {
            execution_id
            for n, (execution_id, _) in enumerate(known)
            if found[2 * n] and not found[2 * n + 1]
        }

    async def lead(self, name: str, ttl_ms: int) -> bool:
        return bool(await self.pool.set(f"{self.queue_name}:lead:{name}", 1, px=ttl_ms, nx=True))

    async def position(self, execution_id: UUID) -> int | None:
        job_id = await self.pool.get(self._marker(execution_id))
        if job_id is None:
            return None
        async with self.pool.pipeline(transaction=False) as pipe:
            pipe.zrank(self.queue_name, job_id)
            pipe.exists(in_progress_key_prefix + job_id.decode())
            rank, taken = await pipe.execute()
        # Jobs being picked up right now still count as ahead: arq drops them when done. The
        # place is the job's: executions enqueued together share a job, and so a place.
        return None if rank is None or taken else int(rank) + 1


_JOB_KEYS = (job_key_prefix, in_progress_key_prefix, retry_key_prefix, result_key_prefix)


async def drop_queue(redis: Any, queue_name: str) -> int:
    """Delete a queue and arq's keys of every job in it: the job, its in-progress key, its
    retry count, its result. arq keeps these under its own global prefixes (`arq:job:` ...),
    outside any namespace, so deleting the queue alone leaves them behind for up to seven
    days. For teardowns (a test run's, a benchmark's); returns the keys deleted."""
    members = await redis.zrange(queue_name, 0, -1)
    doomed: list[Any] = [queue_name]
    for member in members:
        job_id = member.decode() if isinstance(member, bytes) else member
        doomed += [prefix + job_id for prefix in _JOB_KEYS]
    return await _delete(redis, doomed)


async def _delete(redis: Any, keys: Sequence[Any]) -> int:
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += int(await redis.delete(*keys[start : start + 500]))
    return deleted


async def purge_namespace(redis: Any, prefix: str) -> int:
    """Delete every key under `prefix`, its queues with their jobs' keys (`drop_queue`)."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    rest = []
    deleted = 0
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.type(key)
            kinds = await pipe.execute()
        for key, kind in zip(batch, kinds, strict=True):
            if kind in (b"zset", "zset"):
                deleted += await drop_queue(redis, key)
            else:
                rest.append(key)
    return deleted + await _delete(redis, rest)


class InProcessQueue:
    """The embedded default: a priority heap served by worker tasks in this process."""

    def __init__(self, handler: Callable[[UUID], Awaitable[object]], concurrency: int) -> None:
        self.handler = handler
        self.concurrency = concurrency
        self._heap: list[tuple[float, int, UUID]] = []
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._queued: Counter[UUID] = Counter()

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._serve()) for _ in range(self.concurrency)]

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None:
        if defer_until is not None:
            self._push(execution_id, defer_until.timestamp() * 1000)
        else:
            self._push(execution_id, job_score_ms(time.time() * 1000, priority))

    def ask_enqueue(self, jobs: Sequence[tuple[UUID, int]]) -> Awaitable[None]:
        now_ms = time.time() * 1000
        for execution_id, priority in jobs:
            self._push(execution_id, job_score_ms(now_ms, priority))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def _push(self, execution_id: UUID, score: float) -> None:
        heapq.heappush(self._heap, (score, next(self._counter), execution_id))
        self._queued[execution_id] += 1
        self._wakeup.set()

    async def enqueue_many(self, jobs: Sequence[tuple[UUID, int]]) -> None:
        for execution_id, priority in jobs:
            await self.enqueue(execution_id, priority=priority)

    async def live(self, execution_ids: Sequence[UUID]) -> set[UUID]:
        return {i for i in execution_ids if self._queued[i] > 0}

    async def lead(self, name: str, ttl_ms: int) -> bool:
        return True  # one process: always the leader

    async def position(self, execution_id: UUID) -> int | None:
        mine = [entry for entry in self._heap if entry[2] == execution_id]
        if not mine:
            return None
        first = min(mine)
        return sum(1 for entry in self._heap if entry < first) + 1

    async def _serve(self) -> None:
        while True:
            now = time.time() * 1000
            if self._heap and self._heap[0][0] <= now:
                _, _, execution_id = heapq.heappop(self._heap)
                self._queued[execution_id] -= 1
                if self._queued[execution_id] <= 0:
                    del self._queued[execution_id]
                try:
                    await self.handler(execution_id)
                except Exception:
                    log.exception(
                        "in-process job failed", extra={"execution_id": str(execution_id)}
                    )
                continue
            timeout = (self._heap[0][0] - now) / 1000 if self._heap else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
