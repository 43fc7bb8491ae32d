"""The queued side: what a worker (arq or in-process) does with an execution id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from app.engine.stops import ACTIONS, RunControl
from app.events.bus import EventBus
from app.execution.flow import FlowGate
from app.execution.run import HeldRuns
from app.execution.session import SessionResult
from app.metrics import LEASE_TAKEOVERS
from app.store.repository import Repository

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class JobRunner:
    """Claims an execution (a guarded update), then runs it as a held run."""

    repo: Repository
    bus: EventBus
    held: HeldRuns
    lease_ms: int
    flow: FlowGate | None = None

    async def run(self, execution_id: UUID) -> SessionResult | None:
        owner = self.held.owner
        event = ("execution.started", {"owner": owner})
        claimed = await self.repo.claim(execution_id, owner, self.lease_ms, event)
        if claimed is None and self.flow is not None:  # flow control, or not claimable
            claimed = await self.flow.claim(execution_id, owner, self.lease_ms, event)
        if claimed is None:  # someone else runs it, or it is not runnable any more
            log.info("execution not claimable", extra={"execution_id": str(execution_id)})
            return None
        record, started = claimed
        await self.bus.publish([started])
        if record.recoveries > 0:  # claimed from a runner whose lease expired
            LEASE_TAKEOVERS.inc()
        limit = self.held.session.settings.max_recoveries
        if record.recoveries > limit:  # its runners keep dying: stop handing it on
            error = {
                "code": "recovery_exhausted",
                "message": f"the execution lost its runner {record.recoveries} times "
                f"(TURNOUT_MAX_RECOVERIES={limit}): it is not taken over again",
            }
            return await self.held.session.fail(record, owner, error)
        control = RunControl()
        if record.control_action in ACTIONS:  # asked of a runner that died: apply it now
            action = record.control_action
            control.request(ACTIONS[action], f"{action} requested")
        return await self.held.run(record, control)
