"""Run an execution this process holds: the one lifecycle the immediate and queued modes share.

The run's control is registered where signals and shutdown reach it, the immediate budget (if
any) is armed, the session runs it to its next resting point (the execution's own timeout is
armed there, as it counts only time actually run), and what comes next is scheduled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from app.engine.status import Status
from app.engine.stops import RunControl, StopKind
from app.execution.active import ActiveRuns
from app.execution.flow import FlowGate
from app.execution.queue import ExecutionQueue
from app.execution.recorder import CheckpointWriter
from app.execution.session import ExecutionSession, SessionResult
from app.store.records import ExecutionRecord
from app.workflows.graph import CompiledWorkflow


@dataclass(kw_only=True, slots=True)
class HeldRuns:
    """Runs executions whose lease `owner` holds, with one session (immediate or queued)."""

    session: ExecutionSession
    queue: ExecutionQueue
    active: ActiveRuns
    owner: str
    flow: FlowGate | None = None

    async def run(
        self,
        record: ExecutionRecord,
        control: RunControl,
        *,
        budget_ms: int | None = None,
        compiled: CompiledWorkflow | None = None,
        writer: CheckpointWriter | None = None,
    ) -> SessionResult:
        budget = None
        if budget_ms is not None:
            budget = asyncio.get_running_loop().call_later(
                budget_ms / 1000,
                control.request,
                StopKind.INTERRUPT,
                f"promoted: still running after the immediate budget of {budget_ms} ms",
            )
        self.active.add(record.id, control)
        try:
            result = await self.session.run(
                record, self.owner, control, compiled=compiled, writer=writer
            )
        finally:
            if budget is not None:
                budget.cancel()
            self.active.discard(record.id)
        if record.flow is not None and self.flow is not None:
            await self.flow.released(record)  # its slot is free: wake who waits for it
        await schedule_next(self.queue, record.id, result, record.priority)
        return result


async def schedule_next(
    queue: ExecutionQueue, execution_id: UUID, result: SessionResult, priority: int
) -> None:
    """After a run came to rest: requeue a handed-over run, or set a wake-up for a wait."""
    if result.status == Status.PENDING:
        await queue.enqueue(execution_id, priority=priority)
    elif result.status == Status.WAITING and result.outcome.wake_at is not None:
        await queue.enqueue(execution_id, priority=priority, defer_until=result.outcome.wake_at)
