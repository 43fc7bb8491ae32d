"""Queue adapters: arq on Redis, or an in-process worker when there is no Redis."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

log = logging.getLogger(__name__)

JOB_NAME = "run_execution"
# arq orders jobs by score (a time in ms) and has no priority: a higher priority is encoded as
# an earlier score, one step per level, so it is picked before everything already waiting.
PRIORITY_STEP_MS = 1_000_000_000
MAX_PRIORITY = 100
JOB_EXPIRES = timedelta(days=7)


def job_score_ms(now_ms: float, priority: int) -> float:
    return now_ms - max(0, min(priority, MAX_PRIORITY)) * PRIORITY_STEP_MS


class ExecutionQueue(Protocol):
    """Enqueues execution ids (never payloads), after their row is committed."""

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None: ...

    async def close(self) -> None: ...


class ArqQueue:
    """arq on Redis. Every enqueue gets a fresh job id: a kept or running job with the same id
    would swallow a legitimate re-enqueue (resume, wake-up), and the claim dedupes anyway."""

    def __init__(self, pool: Any, queue_name: str) -> None:
        self.pool = pool
        self.queue_name = queue_name

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None:
        if defer_until is None:
            score = job_score_ms(time.time() * 1000, priority)
            defer_until = datetime.fromtimestamp(score / 1000).astimezone()
        await self.pool.enqueue_job(
            JOB_NAME,
            str(execution_id),
            _job_id=f"{execution_id}:{uuid4().hex[:12]}",
            _queue_name=self.queue_name,
            _defer_until=defer_until,
            _expires=JOB_EXPIRES,
        )

    async def close(self) -> None:
        await self.pool.aclose()


class InProcessQueue:
    """The embedded default: a priority heap served by worker tasks in this process."""

    def __init__(self, handler: Callable[[UUID], Awaitable[None]], concurrency: int) -> None:
        self.handler = handler
        self.concurrency = concurrency
        self._heap: list[tuple[float, int, UUID]] = []
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._active: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._serve()) for _ in range(self.concurrency)]

    async def enqueue(
        self, execution_id: UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None:
        if defer_until is not None:
            score = defer_until.timestamp() * 1000
        else:
            score = job_score_ms(time.time() * 1000, priority)
        heapq.heappush(self._heap, (score, next(self._counter), execution_id))
        self._wakeup.set()

    async def _serve(self) -> None:
        while True:
            now = time.time() * 1000
            if self._heap and self._heap[0][0] <= now:
                _, _, execution_id = heapq.heappop(self._heap)
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

    @property
    def depth(self) -> int:
        return len(self._heap)

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
