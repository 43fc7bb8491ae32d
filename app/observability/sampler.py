"""Sampled gauges (live executions by status and mode, queue depth, age of the oldest
pending execution), refreshed every `TURNOUT_METRICS_SAMPLE_MS` in every process, so the
API's `/metrics` and each worker's show them; and the worker's own `/metrics` server."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import start_http_server

from app.config import Settings
from app.engine.state import utcnow
from app.metrics import EXECUTIONS, QUEUE_DEPTH, QUEUE_OLDEST_AGE
from app.store.history import LIVE, HistoryStore

log = logging.getLogger(__name__)

_MODES = ("immediate", "queued")


class Sampler:
    def __init__(self, settings: Settings, store: HistoryStore) -> None:
        self.store = store
        self.interval_s = settings.metrics_sample_ms / 1000
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> None:
        counts = await self.store.live_counts()
        for status in LIVE:
            for mode in _MODES:
                EXECUTIONS.labels(status=status, mode=mode).set(counts.get((status, mode), 0))
        QUEUE_DEPTH.set(sum(n for (status, _), n in counts.items() if status == "pending"))
        oldest = await self.store.oldest_pending()
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        QUEUE_OLDEST_AGE.set(max(0.0, age))

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # the database is down: the gauges keep their value
                log.debug("metrics sample failed: %s", exc)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="turnout-metrics-sampler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def serve_worker_metrics(settings: Settings) -> None:
    """The worker's `/metrics` (any path, in fact) on TURNOUT_WORKER_METRICS_PORT, if set."""
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr="0.0.0.0")
        log.info("worker metrics served", extra={"port": settings.worker_metrics_port})
