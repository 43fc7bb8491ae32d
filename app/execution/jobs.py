"""The queued side: what a worker (arq or in-process) does with an execution id."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from uuid import UUID

from app.engine.control import ACTIONS, HARDER, RunControl, StopKind
from app.events.bus import EventBus
from app.execution.queue import ExecutionQueue
from app.execution.session import ExecutionSession, SessionResult, schedule_next
from app.metrics import LEASE_TAKEOVERS
from app.store.repository import Repository

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


@dataclass(kw_only=True, slots=True)
class JobRunner:
    """Claims an execution (a guarded update), runs it, and re-enqueues it if it must go on."""

    repo: Repository
    bus: EventBus
    session: ExecutionSession
    queue: ExecutionQueue
    active: ActiveRuns
    owner: str
    lease_ms: int

    async def run(self, execution_id: UUID) -> SessionResult | None:
        claimed = await self.repo.claim(
            execution_id, self.owner, self.lease_ms, ("execution.started", {"owner": self.owner})
        )
        if claimed is None:  # someone else runs it, or it is not runnable any more
            log.info("execution not claimable", extra={"execution_id": str(execution_id)})
            return None
        record, started = claimed
        await self.bus.publish([started])
        if record.recoveries > 0:  # claimed from a runner whose lease expired
            LEASE_TAKEOVERS.inc()
        limit = self.session.settings.max_recoveries
        if record.recoveries > limit:  # its runners keep dying: stop handing it on
            error = {
                "code": "recovery_exhausted",
                "message": f"the execution lost its runner {record.recoveries} times "
                f"(TURNOUT_MAX_RECOVERIES={limit}): it is not taken over again",
            }
            return await self.session.fail(record, self.owner, error)
        control = RunControl()
        if record.control_action in ACTIONS:  # asked of a runner that died: apply it now
            action = record.control_action
            control.request(ACTIONS[action], f"{action} requested")
        self.active.add(execution_id, control)
        try:
            result = await self.session.run(record, self.owner, control)
        finally:
            self.active.discard(execution_id)
        await self.follow_up(execution_id, result, record.priority)
        return result

    async def follow_up(self, execution_id: UUID, result: SessionResult, priority: int) -> None:
        """Schedule what comes next: a wake-up for a durable delay, or a requeue."""
        await schedule_next(self.queue, execution_id, result, priority)


async def drain(active: ActiveRuns, grace_s: float, cancel_grace_s: float) -> None:
    """On shutdown: hand every running execution back to the queue.

    No new steps start; running steps get `grace_s` to finish; then they are cancelled (and
    re-run by whoever claims the execution next). Each run checkpoints, releases its lease
    and is re-enqueued by its JobRunner at once: nobody waits for a lease to expire."""
    if not len(active):
        return
    log.info("draining running executions", extra={"count": len(active), "grace_s": grace_s})
    active.request_all(StopKind.DRAIN, "process shutting down")
    if await active.wait_idle(grace_s):
        return
    active.harden_all("process shutting down: grace period over")
    if not await active.wait_idle(cancel_grace_s + 1.0):
        log.warning("executions still running at shutdown", extra={"count": len(active)})
