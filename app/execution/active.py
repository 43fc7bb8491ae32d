"""The executions this process holds right now, so control and shutdown can reach them."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from app.engine.stops import HARDER, RunControl, StopKind

log = logging.getLogger(__name__)


class ActiveRuns:
    """Executions this process is running right now, so control and shutdown can reach them."""

    def __init__(self) -> None:
        self._controls: dict[UUID, RunControl] = {}
        self.idle = asyncio.Event()
        self.idle.set()

    def add(self, execution_id: UUID, control: RunControl) -> None:
        self._controls[execution_id] = control
        self.idle.clear()

    def discard(self, execution_id: UUID) -> None:
        self._controls.pop(execution_id, None)
        if not self._controls:
            self.idle.set()

    def get(self, execution_id: UUID) -> RunControl | None:
        return self._controls.get(execution_id)

    def request_all(self, kind: StopKind, reason: str) -> None:
        for control in self._controls.values():
            control.request(kind, reason)

    def harden_all(self, reason: str) -> None:
        """Turn graceful stops still going into hard ones (running steps are cancelled)."""
        for control in self._controls.values():
            harder = HARDER.get(control.kind) if control.kind is not None else None
            if harder is not None:
                control.request(harder, reason)

    async def wait_idle(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self.idle.wait()
        except TimeoutError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._controls)


async def drain(active: ActiveRuns, grace_s: float, cancel_grace_s: float) -> None:
    """On shutdown: hand every running execution back to the queue.

    No new steps start; running steps get `grace_s` to finish; then they are cancelled (and
    re-run by whoever claims the execution next). Each run checkpoints, releases its lease
    and is re-enqueued by its held run (app.execution.run) at once: nobody waits for a
    lease to expire."""
    if not len(active):
        return
    log.info("draining running executions", extra={"count": len(active), "grace_s": grace_s})
    active.request_all(StopKind.DRAIN, "process shutting down")
    if await active.wait_idle(grace_s):
        return
    active.harden_all("process shutting down: grace period over")
    if not await active.wait_idle(cancel_grace_s + 1.0):
        log.warning("executions still running at shutdown", extra={"count": len(active)})
