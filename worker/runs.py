"""A job's runs, the same whichever way the job reached the worker (arq's poll, or a wake-up's
offer: worker/direct.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

from app.runtime import Runtime
from app.store.database import is_unavailable

log = logging.getLogger(__name__)

Outcome = object  # a run's result, or the exception it raised


async def run_executions(runtime: Runtime, execution_ids: Sequence[str]) -> list[Outcome]:
    """Run every execution of the job at once (a job carries those enqueued together); one
    outcome each, in order."""
    runs = [asyncio.ensure_future(runtime.jobs.run(UUID(i))) for i in execution_ids]
    together = asyncio.gather(*runs, return_exceptions=True)
    try:
        return list(await asyncio.shield(together))
    except asyncio.CancelledError:
        # arq cancels running jobs on SIGTERM. Rather than dropping the runs mid-step, drain:
        # running steps get the grace period, then each execution is checkpointed and
        # re-enqueued at once, so another worker carries on without waiting for the lease.
        await runtime.shutdown_runs()
        await asyncio.wait(runs)
        raise


def failures(outcomes: Sequence[Outcome]) -> list[BaseException]:
    return [o for o in outcomes if isinstance(o, BaseException)]


def unavailable(outcomes: Sequence[Outcome]) -> BaseException | None:
    """The first failure that says the database is down (the job should be tried again)."""
    return next((f for f in failures(outcomes) if is_unavailable(f)), None)


def log_failures(
    execution_ids: Sequence[str], outcomes: Sequence[Outcome], *, but: BaseException | None = None
) -> None:
    """Log the runs that raised, but `but` (the failure the caller raises itself)."""
    for execution_id, outcome in zip(execution_ids, outcomes, strict=True):
        if isinstance(outcome, BaseException) and outcome is not but:
            log.error(
                "execution job failed",
                extra={"execution_id": execution_id, "error": type(outcome).__name__},
                exc_info=outcome,
            )
