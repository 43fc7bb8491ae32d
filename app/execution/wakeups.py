"""The workers' wake-up calls, at most one per `WAKE_EVERY_S` from a process.

Every enqueue should wake an idle worker at once (worker/wake.py: a job due now starts, a
deferred one tells an idle worker when to read its queue next), but
under load a call per job only costs the workers a message and a poll each: they find the
jobs by polling anyway. So a process calls at most once per interval: the first job of a
quiet spell wakes the workers in its own pipeline; jobs within the interval after it share
one call at the interval's end. No job waits more than the interval for its call.

The call that goes at once may offer its pipeline's job (when it wrote exactly one due now):
its message names the job and its executions, so an idle worker can take the job without
reading it back from the queue (worker/direct.py). A call at an interval's end names none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from app.events.redis_writes import RedisWrites

# Two and a half of the workers' default polls (2 ms): well under anything a person notices.
WAKE_EVERY_S = 0.005


def wake_channel(queue_name: str) -> str:
    """Where workers hear of jobs due now (worker/wake.py)."""
    return f"{queue_name}:wake"


def encode_offer(offer: tuple[str, Sequence[str]]) -> bytes:
    """A wake-up's message that offers a job: its id, then its execution ids (no spaces in
    any of them: an arq job id of ours is `{uuid}:{hex}`)."""
    job_id, execution_ids = offer
    return " ".join((job_id, *execution_ids)).encode()


def decode_offer(message: bytes | str) -> tuple[str, list[str]] | None:
    """The job a wake-up offers, or None (a plain wake-up, or a message of another kind)."""
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    job_id, *execution_ids = text.split() or [""]
    return (job_id, execution_ids) if job_id and execution_ids else None


class WakeCalls:
    """The wake-up calls of one queue from this process (a PipelineWriter of its own for
    the calls that go at an interval's end)."""

    atomic = False

    def __init__(self, queue_name: str, writes: RedisWrites) -> None:
        self.channel = wake_channel(queue_name)
        self.writes = writes
        self._last = -WAKE_EVERY_S
        self._later: asyncio.TimerHandle | None = None

    def call(self, pipe: Any, offer: tuple[str, Sequence[str]] | None = None) -> None:
        """Jobs are in `pipe`: call the workers in it (offering `offer`, a job due now and
        its execution ids), or at the interval's end."""
        now = time.monotonic()
        if now - self._last >= WAKE_EVERY_S:
            self._last = now
            pipe.publish(self.channel, encode_offer(offer) if offer else b"")
        elif self._later is None:
            delay = self._last + WAKE_EVERY_S - now
            self._later = asyncio.get_running_loop().call_later(delay, self._call)

    def _call(self) -> None:
        self._later = None
        self._last = time.monotonic()
        self.writes.send(self, None)

    def add(self, pipe: Any, items: Sequence[None]) -> None:
        pipe.publish(self.channel, b"")
