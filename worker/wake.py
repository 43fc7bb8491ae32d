"""Workers wake when a job is enqueued, instead of at their next poll.

arq finds due jobs by polling its queue every `poll_delay` (TURNOUT_WORKER_POLL_DELAY_MS,
2 ms): a job enqueued just after a poll waits for the next one, 1 ms on average. An enqueue
of a job due now also publishes on `{queue}:wake`, in the same MULTI/EXEC as the job (under
load a process calls at most once per 5 ms: app/execution/wakeups.py); each worker listens
there and cuts its poll's sleep short. The poll stays the fallback: deferred jobs become due
without a message, and a listener cut off from Redis only makes its worker poll as before.

arq has no hook for this: its `Worker.main` loops over `arq.worker.poll(step)`, which
`install` replaces with `poll` below (the same loop, with a sleep a wake-up ends early)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import arq.worker

from app.execution.wakeups import wake_channel

log = logging.getLogger(__name__)


class Waker:
    """Sleeps that a wake-up ends early: every sleep begun since `epoch` was read."""

    def __init__(self) -> None:
        self.epoch = 0
        self._sleepers: set[asyncio.Future[None]] = set()

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
        epoch = wakes.epoch  # a wake-up during the iteration skips the next sleep
        yield before - start
        wait = step - (loop.time() - before)
        if wait > 0:
            await wakes.sleep(wait, epoch)


def install() -> None:
    """Make arq's worker loop use `poll` (idempotent)."""
    arq.worker.poll = poll  # type: ignore[attr-defined]


class WakeListener:
    """Reads `{queue}:wake` on its own connection and wakes this loop's workers."""

    def __init__(self, redis: Any, queue_name: str) -> None:
        self.redis = redis
        self.channel = wake_channel(queue_name)
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
                        if message is not None:
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
