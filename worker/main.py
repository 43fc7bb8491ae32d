"""arq worker: `arq worker.main.WorkerSettings` (or `turnout worker`).

Job functions are thin: they take an execution id and call the same runner as the API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from arq.worker import Retry, func

from app.config import Settings, get_settings
from app.execution.queue import JOB_NAME
from app.logs import configure_logging
from app.observability.sampler import serve_worker_metrics
from app.runtime import Runtime
from app.store.database import is_unavailable
from worker.settings import redis_settings

log = logging.getLogger(__name__)

# Backoff of a job that met a database outage: 1 s, 2 s, 4 s ... up to 30 s.
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings)
    runtime = Runtime(settings, role="worker")
    await runtime.start()
    serve_worker_metrics(settings)
    ctx["runtime"] = runtime


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def run_execution(ctx: dict[str, Any], execution_id: str) -> None:
    runtime: Runtime = ctx["runtime"]
    run = asyncio.ensure_future(runtime.run_job(UUID(execution_id)))
    try:
        await asyncio.shield(run)
    except asyncio.CancelledError:
        # arq cancels running jobs on SIGTERM. Rather than dropping the run mid-step, drain:
        # running steps get the grace period, then the execution is checkpointed and
        # re-enqueued at once, so another worker carries on without waiting for the lease.
        await runtime.shutdown_runs()
        await asyncio.wait({run})
        raise
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The database is down: try again later (the claim dedupes; a half-run execution
        # keeps its lease until it expires, then the retry or the reconciler takes it over).
        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(ctx.get("job_try", 1), 10))
        log.warning("database unavailable; retrying job", extra={"retry_in_s": delay})
        raise Retry(defer=delay) from exc


def worker_options(settings: Settings) -> dict[str, Any]:
    """The arq Worker keyword arguments, tuned for latency (see README, Queued mode)."""
    return {
        "functions": [func(run_execution, name=JOB_NAME, keep_result=0, max_tries=1000)],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings),
        "ctx": {"settings": settings},
        "queue_name": settings.queue_name,
        # arq's defaults (0.5 s poll, 10 jobs) add ~0.5 s per job; poll every few ms instead.
        "poll_delay": settings.worker_poll_delay_ms / 1000,
        "max_jobs": settings.worker_max_jobs,
        "keep_result": 0,
        # An execution may run for hours; its own timeouts apply, not arq's.
        "job_timeout": 7 * 24 * 3600,
        "health_check_key": f"{settings.queue_name}:health-check",
    }


# Read by `arq worker.main.WorkerSettings`: a class whose attributes are the Worker's kwargs.
WorkerSettings = type("WorkerSettings", (), worker_options(get_settings()))
