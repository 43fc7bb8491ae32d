"""Workers wake when a job is enqueued, instead of at their next poll; idle, they do not poll.

arq finds due jobs by polling its queue every `poll_delay` (TURNOUT_WORKER_POLL_DELAY_MS,
2 ms): a job enqueued just after a poll waits for the next one, 1 ms on average. An enqueue
also publishes on `{queue}:wake`, in the same MULTI/EXEC as the job (under load a process
calls at most once per 5 ms: app/execution/wakeups.py); each worker listens there and cuts
its poll's sleep short.

So a worker with no job in hand need not poll every 2 ms (500 queue reads a second, a
quarter of an idle worker's core): it reads when the earliest job in the queue that its
last read did not see is due (a deferred one: a timer, a rate limit's retry), when woken,
and at the latest after `IDLE_POLL_S`: the fallback for a listener cut off from Redis and
for jobs written without a wake-up (arq's own retries, a producer other than
`ArqQueue`). With jobs in hand it polls every `poll_delay`, as arq does.

arq has no hook for this: its `Worker.main` loops over `arq.worker.poll(step)`, which
`install` replaces with `poll` below (the same loop, with a sleep a wake-up ends early),
and each `Worker._poll_iteration` tells the loop's `Waker` how many jobs it holds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Protocol

import arq.worker

from app.execution.wakeups import wake_channel

log = logging.getLogger(__name__)

# The longest an idle worker goes without reading its queue (arq's own default poll).
IDLE_POLL_S = 0.5


class Waker:
    """Sleeps that a wake-up ends early: every sleep begun since `epoch` was read."""

    def __init__(self) -> None:
        self.epoch = 0
        self._sleepers: set[asyncio.Future[None]] = set()
        self.polls = 0  # iterations of the loop's workers
        # What the loop's arq workers told after their latest iteration: jobs in hand (and
        # when: a worker that stopped iterating holds none), and where their queue is
        # (None until a worker has polled).
        self.jobs: dict[int, tuple[int, float]] = {}
        self.queue: tuple[Any, str] | None = None

    def polled(self, worker: Any) -> None:
        self.polls += 1
        self.jobs[id(worker)] = (worker.job_counter, time.monotonic())
        self.queue = (worker.pool, worker.queue_name)

    def busy(self) -> bool:
        recent = time.monotonic() - 2 * IDLE_POLL_S
        self.jobs = {k: v for k, v in self.jobs.items() if v[1] >= recent}
        return any(count for count, _ in self.jobs.values())

    async def idle_wait(self, limit_s: float, since_ms: float) -> float:
        """With no job in hand: seconds until the earliest job scored after `since_ms` (a
        wall-clock time before the latest iteration read the queue) is due, at most
        `limit_s`; 0 when one is due now or the queue cannot be read. Jobs scored before
        it were in that read: started, or running elsewhere (arq keeps a running job in
        the queue; one whose worker died stays there until its in-progress key expires),
        so they need no poll. 0 with jobs in hand (without reading the queue)."""
        if self.queue is None or self.busy():
            return 0.0
        pool, name = self.queue
        try:
            earliest = await pool.zrangebyscore(
                name, f"({since_ms}", "+inf", start=0, num=1, withscores=True
            )
        except Exception:  # Redis is away: poll as arq does
            return 0.0
        if not earliest:
            return limit_s
        due_in_s = (float(earliest[0][1]) - time.time() * 1000) / 1000
        return max(0.0, min(limit_s, due_in_s))

    def wake(self) -> None:
        self.epoch += 1
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def sleep(self, seconds: float, epoch: int) -> None:
        """Sleep up to `seconds`; not at all if a wake-up came since `epoch`."""
        if epoch != self.epoch:
            return
        loop = asyncio.get_running_loop()
        sleeper: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _end, sleeper)
        self._sleepers.add(sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.discard(sleeper)


def _end(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


# One per event loop: the workers of a loop share it (a wake-up wakes them all, and each
# polls once: the job goes to one, arq's in-progress key keeps the others off it).
_WAKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Waker] = weakref.WeakKeyDictionary()


def waker() -> Waker:
    loop = asyncio.get_running_loop()
    found = _WAKERS.get(loop)
    if found is None:
        found = _WAKERS[loop] = Waker()
    return found


async def poll(step: float = 0.5) -> AsyncGenerator[float, None]:
    """arq.utils.poll, whose sleep between iterations a wake-up ends."""
    loop = asyncio.get_running_loop()
    wakes = waker()
    start = loop.time()
    while True:
        before = loop.time()
        since_ms = time.time() * 1000  # what the iteration's read sees is scored before it
        epoch = wakes.epoch  # a wake-up during the iteration skips the next sleep
        yield before - start
        wait = step - (loop.time() - before)
        wait = max(wait, await wakes.idle_wait(IDLE_POLL_S, since_ms))
        if wait > 0:
            await wakes.sleep(wait, epoch)


_ITERATION = arq.worker.Worker._poll_iteration


async def _poll_iteration(self: arq.worker.Worker) -> None:
    await _ITERATION(self)
    waker().polled(self)


def install() -> None:
    """Make arq's worker loop use `poll`, its iterations tell `waker` (idempotent)."""
    arq.worker.poll = poll  # type: ignore[attr-defined]
    arq.worker.Worker._poll_iteration = _poll_iteration  # type: ignore[method-assign]


class Offers(Protocol):
    """Who may see to a wake-up's job instead of the poll (worker/direct.py)."""

    def offer(self, message: bytes | str) -> bool: ...

    async def close(self) -> None: ...


class WakeListener:
    """Reads `{queue}:wake` on its own connection and wakes this loop's workers (unless
    `offers` takes the job the wake-up offers)."""

    def __init__(self, redis: Any, queue_name: str, offers: Offers | None = None) -> None:
        self.redis = redis
        self.channel = wake_channel(queue_name)
        self.offers = offers
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(waker()))

    async def _listen(self, wakes: Waker) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is None:
                            continue
                        if self.offers is None or not self.offers.offer(message["data"]):
                            wakes.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Polling goes on meanwhile; only the early wake-ups pause.
                log.warning("wake-up channel lost; listening again in 1 s", exc_info=True)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.offers is not None:
            await self.offers.close()
