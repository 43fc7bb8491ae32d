"""How the outside world asks a running execution to stop (pure asyncio, no I/O)."""

from __future__ import annotations

import asyncio
from enum import StrEnum


class StopKind(StrEnum):
    PAUSE = "pause"  # no new steps; running steps finish
    PAUSE_ABORT = "pause_abort"  # no new steps; running steps are cancelled, re-run on resume
    CANCEL = "cancel"  # no new steps; running steps are cancelled; final
    TIMEOUT = "timeout"  # the whole-run timeout elapsed: like cancel, but the run fails
    INTERRUPT = "interrupt"  # promotion or shutdown: cancel running steps, hand over
    DRAIN = "drain"  # shutdown: no new steps; running steps finish, then hand over


# What each kind does to steps that are running when it arrives.
CANCELS_RUNNING = frozenset(
    {StopKind.PAUSE_ABORT, StopKind.CANCEL, StopKind.TIMEOUT, StopKind.INTERRUPT}
)
# Which kinds give running steps back to `pending` (re-run later) rather than ending them.
REQUEUES_RUNNING = frozenset({StopKind.PAUSE_ABORT, StopKind.INTERRUPT})

# The control actions a user can ask for (stored in `control_action`), as stop kinds.
ACTIONS: dict[str, StopKind] = {
    "cancel": StopKind.CANCEL,
    "pause": StopKind.PAUSE,
    "pause_abort": StopKind.PAUSE_ABORT,
}

# When two requests race, the stronger one wins.
_STRENGTH = {
    StopKind.DRAIN: -1,  # a user's pause during a shutdown still ends `paused`
    StopKind.PAUSE: 0,
    StopKind.PAUSE_ABORT: 1,
    StopKind.INTERRUPT: 2,
    StopKind.TIMEOUT: 3,
    StopKind.CANCEL: 4,
}


# A graceful stop whose grace ran out becomes the hard version of itself.
HARDER = {StopKind.DRAIN: StopKind.INTERRUPT, StopKind.PAUSE: StopKind.PAUSE_ABORT}


class RunControl:
    """A stop request shared by the runner and whoever may stop it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._stopped = asyncio.Event()
        self.kind: StopKind | None = None
        self.reason: str = ""
        self.by: str | None = None  # who asked (X-Actor), when a user did

    def request(self, kind: StopKind, reason: str = "", by: str | None = None) -> None:
        if self.kind is None or _STRENGTH[kind] > _STRENGTH[self.kind]:
            self.kind = kind
            self.reason = reason
            self.by = by
        elif kind == self.kind and by is not None and self.by is None:
            # The same request seen twice (checkpoint, then signal): keep who asked.
            self.reason, self.by = reason, by
        # Wake everyone waiting for a change, then start a fresh event for the next one.
        self._event.set()
        self._event = asyncio.Event()
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self.kind is not None

    async def changed(self) -> None:
        """Return at the next stop request (a stronger one may follow a weaker one)."""
        await self._event.wait()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless a stop arrives first; True if the sleep was cut short."""
        if self._stopped.is_set():
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._stopped.wait()
        except TimeoutError:
            return False
        return True
