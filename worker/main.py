"""arq worker: `arq worker.main.WorkerSettings` (or `turnout worker`).

Job functions are thin: they take an execution id and call the same runner as the API."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from arq.cron import CronJob
from arq.typing import StartupShutdown
from arq.worker import Function, Retry, func

from app.config import Settings, get_settings
from app.execution.queue import JOB_NAME, redis_settings
from app.logs import configure_logging
from app.observability.sampler import serve_worker_metrics
from app.runtime import Runtime, build_runtime, tune_collector
from worker import runs, wake
from worker.direct import DirectStarts

log = logging.getLogger(__name__)

# Backoff of a job that met a database outage: 1 s, 2 s, 4 s ... up to 30 s.
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    configure_logging(settings)
    runtime = build_runtime(settings, role="worker")
    await runtime.start()
    serve_worker_metrics(settings)
    ctx["runtime"] = runtime
    # Before Worker.main's poll loop starts (it runs after this hook).
    wake.install()
    offers = None
    if settings.worker_direct_start:
        offers = DirectStarts(
            ctx["redis"],
            settings.queue_name,
            lambda execution_ids: runs.run_executions(runtime, execution_ids),
            wake.waker(),
            in_progress_ms=IN_PROGRESS_MS,
            draining=lambda: runtime.draining,
        )
    listener = wake.WakeListener(ctx["redis"], settings.queue_name, offers)
    await listener.start()
    ctx["wake"] = listener
    if ctx.get("tune_gc"):
        tune_collector()


async def shutdown(ctx: dict[str, Any]) -> None:
    listener: wake.WakeListener | None = ctx.get("wake")
    if listener is not None:
        await listener.close()
    runtime: Runtime | None = ctx.get("runtime")
    if runtime is not None:
        await runtime.close()


async def run_execution(ctx: dict[str, Any], *execution_ids: str) -> None:
    """Run every execution of the job at once (a job carries those enqueued together)."""
    outcomes = await runs.run_executions(ctx["runtime"], execution_ids)
    down = runs.unavailable(outcomes)
    if down is not None:
        # The database is down: try the job again later (the claim dedupes, so its runs that
        # ended are not run again; a half-run execution keeps its lease until it expires,
        # then the retry or the reconciler takes it over).
        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(ctx.get("job_try", 1), 10))
        log.warning("database unavailable; retrying job", extra={"retry_in_s": delay})
        raise Retry(defer=delay) from down
    failed = runs.failures(outcomes)
    runs.log_failures(execution_ids, outcomes, but=failed[0] if failed else None)
    if failed:
        raise failed[0]


# An execution may run for hours; its own timeouts apply, not arq's.
JOB_TIMEOUT_S = 7 * 24 * 3600
# How long arq's in-progress key of a job lasts (arq: the longest job timeout, plus 10 s).
IN_PROGRESS_MS = (JOB_TIMEOUT_S + 10) * 1000
# The Worker keyword arguments that come from the process's settings, in `tuned`'s order.
TUNED = ("redis_settings", "ctx", "queue_name", "poll_delay", "max_jobs", "health_check_key")


def tuned(settings: Settings) -> tuple[Any, ...]:
    """The settings-dependent Worker kwargs, tuned for latency (see README, Queued mode):
    arq's defaults (0.5 s poll, 10 jobs) add ~0.5 s per job; poll every few ms instead."""
    return (
        redis_settings(settings),
        {"settings": settings},
        settings.queue_name,
        settings.worker_poll_delay_ms / 1000,
        settings.worker_max_jobs,
        f"{settings.queue_name}:health-check",
    )


class WorkerSettings:
    """Read by `arq worker.main.WorkerSettings`: its attributes are the Worker's kwargs."""

    functions: Sequence[Function] = [
        func(run_execution, name=JOB_NAME, keep_result=0, max_tries=1000)
    ]
    cron_jobs: Sequence[CronJob] | None = None
    on_startup: StartupShutdown | None = startup
    on_shutdown: StartupShutdown | None = shutdown
    keep_result = 0
    job_timeout = JOB_TIMEOUT_S
    (redis_settings, ctx, queue_name, poll_delay, max_jobs, health_check_key) = tuned(
        get_settings()
    )
    ctx = {**ctx, "tune_gc": True}  # the process is the worker's own (tests' workers: not)


def worker_options(settings: Settings) -> dict[str, Any]:
    """The arq Worker keyword arguments for `settings` (tests run workers on their own)."""
    fixed = {
        k: v for k, v in vars(WorkerSettings).items() if not k.startswith("_") and k not in TUNED
    }
    return {**fixed, **dict(zip(TUNED, tuned(settings), strict=True))}
