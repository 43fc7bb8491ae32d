"""arq worker: `arq worker.main.WorkerSettings` (or `turnout worker`).

Job functions are thin: they take an execution id and call the same runner as the API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from arq.worker import func

from app.config import Settings, get_settings
from app.execution.queue import JOB_NAME
from app.logs import configure_logging
from app.runtime import Runtime
from worker.settings import redis_settings


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings)
    runtime = Runtime(settings, role="worker")
    await runtime.start()
    ctx["runtime"] = runtime


async def shutdown(ctx: dict[str, Any]) -> None:
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def run_execution(ctx: dict[str, Any], execution_id: str) -> None:
    runtime: Runtime = ctx["runtime"]
    await runtime.run_job(UUID(execution_id))


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
