"""An idle worker takes the job a wake-up offers, instead of reading it back from the queue.

Through the queue, a job costs a worker six round trips to Redis before its function runs:
the poll's read of the queue; arq's WATCH, EXISTS and ZSCORE of the job; the MULTI/EXEC that
sets its in-progress key; and the read of the job itself. That is about 2 ms of a queued
run's latency on a 2-core machine. A wake-up that goes at once names its pipeline's job when
it wrote only one due now (app/execution/wakeups.py), so an idle worker takes that job with
one round trip: a SET, NX, of arq's own in-progress key. From then on arq's workers see the
job as running elsewhere and pass it by, as they pass by a job another arq worker holds; a
worker that loses the SET (another took the job first) leaves it alone.

Nothing else changes:
- the job stays in the queue while it runs, as arq keeps a running job there, and is removed
  with its keys when its runs end, as arq removes a finished one;
- the claim (a guarded update) still decides whether an execution runs;
- a worker that dies holding the job leaves what an arq worker would: an in-progress key,
  and a running execution whose lease expires (the reconciler re-enqueues it);
- a run that met a database outage gives the job back to arq (its in-progress key deleted,
  the poll woken), whose retries back off as for any job.

Only an idle worker takes offers, and one job at a time: a busy one polls every few ms
anyway (TURNOUT_WORKER_DIRECT_START=false turns offers off)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix

from app.execution.wakeups import decode_offer
from worker import runs
from worker.wake import Waker

log = logging.getLogger(__name__)

RunJob = Callable[[Sequence[str]], Awaitable[list[runs.Outcome]]]
Draining = Callable[[], bool]


class DirectStarts:
    """Takes offered jobs for this worker while it is idle (see the module's docstring)."""

    def __init__(
        self,
        pool: Any,
        queue_name: str,
        run: RunJob,
        wakes: Waker,
        *,
        in_progress_ms: int,
        draining: Draining = lambda: False,
    ) -> None:
        self.pool = pool
        self.queue_name = queue_name
        self.run = run
        self.draining = draining  # shutting down: runs are handed over, none is taken
        self.wakes = wakes
        self.in_progress_ms = in_progress_ms
        self.taken = 0  # jobs this worker ran from an offer
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def offer(self, message: bytes | str) -> bool:
        """True when this worker sees to the wake-up's job itself; False: wake the poll."""
        offered = decode_offer(message)
        if offered is None or self._closed or self.draining() or self.busy or self.wakes.busy():
            return False
        self._task = asyncio.get_running_loop().create_task(self._take(*offered))
        return True

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _take(self, job_id: str, execution_ids: Sequence[str]) -> None:
        in_progress = in_progress_key_prefix + job_id
        try:
            mine = await self.pool.set(in_progress, b"1", px=self.in_progress_ms, nx=True)
        except Exception:
            log.warning("could not take an offered job; polling for it", exc_info=True)
            self.wakes.wake()
            return
        if not mine:
            return  # another worker holds it
        self.taken += 1
        try:
            outcomes = await self.run(execution_ids)
        except asyncio.CancelledError:
            # Shutdown: the runs were drained (checkpointed and re-enqueued). As arq does
            # with a job it cancels, the job goes back to the queue for another worker
            # (whose claims find the runs taken care of).
            await self._forget(in_progress)
            raise
        down = runs.unavailable(outcomes)
        if down is not None:
            # arq's retries back off; its claim dedupes the runs that ended.
            log.warning(
                "database unavailable; handing the job back to the queue",
                extra={"job_id": job_id, "error": type(down).__name__},
            )
            await self._forget(in_progress)
            self.wakes.wake()
            return
        runs.log_failures(execution_ids, outcomes)
        await self._finish(job_id)

    async def _forget(self, in_progress: str) -> None:
        try:
            await self.pool.delete(in_progress)
        except Exception:  # the key expires; the reconciler re-enqueues meanwhile
            log.warning("could not hand a job back to the queue", exc_info=True)

    async def _finish(self, job_id: str) -> None:
        """What arq does when a job ends (keep_result=0): the job leaves the queue."""
        try:
            async with self.pool.pipeline(transaction=True) as tr:
                tr.delete(
                    in_progress_key_prefix + job_id,
                    retry_key_prefix + job_id,
                    job_key_prefix + job_id,
                )
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
                await tr.execute()
        except Exception:
            # Left in the queue with its in-progress key: the runs ended, so nothing runs
            # again; the key and the job expire.
            log.warning("could not remove a finished job from the queue", exc_info=True)

    async def close(self) -> None:
        """Take no more offers; a job in hand ends as arq's running jobs do at shutdown."""
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()  # runs.run_executions drains the runs (checkpointed, re-enqueued)
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.warning("an offered job failed at shutdown", exc_info=True)
