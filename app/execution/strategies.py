"""The two tracks a run can take: in the request handler, or on the queue."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.engine.state import utcnow
from app.engine.status import Status
from app.engine.stops import RunControl
from app.errors import ServiceUnavailable
from app.events.bus import EventBus
from app.execution.deferred import DeferredCreation, written_at_rest
from app.execution.queue import ExecutionQueue
from app.execution.run import HeldRuns
from app.store.creations import created_record, creation_values
from app.store.records import EventRecord, ExecutionRecord, NewExecution, numbered_events
from app.store.repository import Repository
from app.workflows.graph import CompiledWorkflow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Started:
    record: ExecutionRecord
    finished: bool  # True: the response carries the final state (200); False: 202
    created: bool = True


def first_events(
    record: ExecutionRecord, events: list[tuple[str, dict[str, Any]]]
) -> list[EventRecord]:
    """The events a creation stored (seq 1, 2, ...), to publish live after the commit."""
    return numbered_events(record.id, len(events), events, record.created_at)


def created_event(new: NewExecution) -> tuple[str, dict[str, Any]]:
    return (
        "execution.created",
        {
            "workflow": new.workflow_name,
            "mode": new.execution_mode,
            "requestedMode": new.requested_mode,
            "priority": new.priority,
            "tags": new.tags,
        },
    )


class QueuedExecutionStrategy:
    """Commit the pending row first, then enqueue its id: a job never sees a missing row."""

    def __init__(self, repo: Repository, bus: EventBus, queue: ExecutionQueue) -> None:
        self.repo = repo
        self.bus = bus
        self.queue = queue

    async def start(self, new: NewExecution, compiled: CompiledWorkflow) -> Started:
        new.status = Status.PENDING
        new.execution_mode = "queued"
        events = [created_event(new)]
        record, created = await self.repo.create_execution(new, events)
        if not created:
            return Started(record, finished=False, created=False)
        await hand_over(self.queue, self.bus, [record], first_events(record, events))
        return Started(record, finished=False)


async def hand_over(
    queue: ExecutionQueue,
    bus: EventBus,
    records: Sequence[ExecutionRecord],
    events: Sequence[EventRecord],
) -> None:
    """Enqueue the committed runs' jobs, then publish their events (a queued submission, or
    a bulk one). The enqueue is asked before the publish, so the jobs go first; with Redis
    both are one pipeline (the bus reaches the process's RedisWrites before its first
    await)."""
    if not records:
        return
    enqueued = queue.ask_enqueue([(r.id, r.priority) for r in records])
    try:
        if events:
            await bus.publish(events)
    finally:
        try:
            await enqueued
        except Exception:
            # The rows are committed: the reconciler enqueues them when the queue is back.
            ids = {"execution_id": str(records[0].id)} if len(records) == 1 else {}
            log.exception("enqueue failed", extra={**ids, "executions": len(records)})


@dataclass(kw_only=True, slots=True)
class ImmediateExecutionStrategy:
    """Run in the request handler under a budget; past it, hand the run to the queue."""

    settings: Settings
    repo: Repository
    bus: EventBus
    held: HeldRuns

    async def start(self, new: NewExecution, compiled: CompiledWorkflow) -> Started:
        if new.flow is not None and self.held.flow is not None:
            return await self._start_gated(new, compiled)
        if written_at_rest(new, self.held.session.registry):
            return await self._start_written_at_rest(new, compiled)
        events = self._running(new)
        # Committed before the first step runs, so a crash of this process is recoverable.
        record, created = await self.repo.create_execution(new, events)
        if not created:
            # Lost the race to an identical request: answered as a replay is (202 while running).
            finished = record.status not in (Status.PENDING, Status.RUNNING)
            return Started(record, finished=finished, created=False)
        await self.bus.publish(first_events(record, events))
        return await self._run(record, compiled)

    def _running(self, new: NewExecution) -> list[tuple[str, dict[str, Any]]]:
        """Make `new` a running immediate run of this process; its first events."""
        owner = self.held.owner
        new.status = Status.RUNNING
        new.execution_mode = "immediate"
        new.lease_owner = owner
        new.lease_ms = self.settings.lease_ms
        return [created_event(new), ("execution.started", {"owner": owner})]

    async def _start_written_at_rest(
        self, new: NewExecution, compiled: CompiledWorkflow
    ) -> Started:
        """A pure run, stored by its first checkpoint (app/execution/deferred.py)."""
        events = self._running(new)
        record = created_record(creation_values(new, len(events), utcnow()))
        writer = DeferredCreation(self.repo, new, events, record.created_at)
        return await self._run(record, compiled, writer)

    async def _run(
        self,
        record: ExecutionRecord,
        compiled: CompiledWorkflow,
        writer: DeferredCreation | None = None,
    ) -> Started:
        # A run whose own timeout comes no later than the budget is never promoted: the
        # timeout ends it (both timers on one deadline would race for the run).
        budget_ms: int | None = self.settings.immediate_budget_ms
        if record.timeout_ms is not None and record.timeout_ms <= self.settings.immediate_budget_ms:
            budget_ms = None
        result = await self.held.run(
            record, RunControl(), budget_ms=budget_ms, compiled=compiled, writer=writer
        )
        if writer is not None and not writer.created:
            # Never stored (the database went away): nothing was accepted.
            raise ServiceUnavailable("the execution could not be stored: send it again")
        final = result.record or await self.repo.get_execution(record.id)
        return Started(final, finished=result.status not in (Status.PENDING, None))

    async def _start_gated(self, new: NewExecution, compiled: CompiledWorkflow) -> Started:
        """Flow control applies to immediate runs too: created pending, then claimed through
        the gate here. Let through, it runs in the request as usual; held back, it stays
        pending on the queue (202, with its `pendingReason`), as a promoted run does."""
        assert self.held.flow is not None
        owner = self.held.owner
        new.status = Status.PENDING
        new.execution_mode = "immediate"
        events = [created_event(new)]
        record, created = await self.repo.create_execution(new, events)
        if not created:
            finished = record.status not in (Status.PENDING, Status.RUNNING)
            return Started(record, finished=finished, created=False)
        await self.bus.publish(first_events(record, events))
        event = ("execution.started", {"owner": owner})
        claimed = await self.held.flow.claim(record.id, owner, self.settings.lease_ms, event)
        if claimed is None:  # held back (or cancelled, for cancel_newest)
            final = await self.repo.get_execution(record.id)
            return Started(final, finished=final.status == Status.CANCELLED)
        running, started = claimed
        await self.bus.publish([started])
        return await self._run(running, compiled)
