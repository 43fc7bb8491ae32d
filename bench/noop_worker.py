"""W4's baseline: arq with Turnout's worker settings, running a no-op job.

`python -m arq bench.noop_worker.WorkerSettings`: same poll_delay, max_jobs and keep_result
as `worker_options`, on its own queue; each job only bumps a counter so completions can be
counted from outside."""

from __future__ import annotations

from typing import Any

from arq.worker import func

from app.config import get_settings
from worker.main import worker_options

NOOP_JOB = "bench_noop"


def noop_queue(queue_name: str) -> str:
    return f"{queue_name}:noop"


def counter_key(queue_name: str) -> str:
    return f"{queue_name}:noop:done"


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(ctx["counter_key"])


def noop_worker_options() -> dict[str, Any]:
    settings = get_settings()
    options = worker_options(settings)
    queue = noop_queue(settings.queue_name)
    options.update(
        functions=[func(noop, name=NOOP_JOB, keep_result=0)],
        on_startup=None,
        on_shutdown=None,
        ctx={"counter_key": counter_key(settings.queue_name)},
        queue_name=queue,
        health_check_key=f"{queue}:health-check",
    )
    return options


WorkerSettings = type("WorkerSettings", (), noop_worker_options())
