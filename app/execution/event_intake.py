"""`POST /events`: record an event once per id, wake the runs waiting on its name, and start
the registered workflows it triggers (once per event id, whatever the number of processes)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.engine.status import TERMINAL
from app.errors import ExpressionError, TurnoutError
from app.expressions.expression import compile_expression
from app.store.composition import CompositionStore, StoredEvent
from app.store.records import WorkflowRecord

if TYPE_CHECKING:
    from app.execution.composition import CompositionBus
    from app.execution.manager import RunRequest, Submission

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EventAnswer:
    event: StoredEvent
    created: bool
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # The same for a repeated id: the event as first stored, the runs it started.
        return {**self.event.view(), "runs": self.runs, "errors": self.errors}


def trigger_key(namespace: str, event_id: str, workflow: str) -> str:
    """The Idempotency-Key of a triggered run: unique in the database, so one run per event."""
    return f"event:{namespace}:{event_id}:{workflow}"


class EventIntake:
    def __init__(
        self,
        store: CompositionStore,
        bus: CompositionBus,
        submit: Callable[[RunRequest], Awaitable[Submission]],
    ) -> None:
        self.store = store
        self.bus = bus
        self.submit = submit

    async def send(self, namespace: str, name: str, data: Any, event_id: str | None) -> EventAnswer:
        event, created = await self.store.record_event(namespace, name, data, event_id)
        if created:
            await self._wake_waiters(event)
        # Also on a repeat: a sender retrying after a crash mid-way gets the missing runs,
        # and the runs already started are found by their key (nothing is started twice).
        answer = EventAnswer(event, created)
        for workflow in await self.store.triggered_by(namespace, event.name):
            await self._trigger(workflow, event, answer)
        log.info(
            "event recorded",
            extra={
                "event_id": event.event_id,
                "event_name": name,
                "new_event": created,
                "runs": len(answer.runs),
            },
        )
        return answer

    async def _wake_waiters(self, event: StoredEvent) -> None:
        data = {"reason": "event", "eventId": event.event_id, "event": event.name}
        for execution_id in await self.store.waiters(event.namespace, event.name):
            if await self.bus.wake(execution_id, data):
                continue
            # Not waiting: still parking (it looks again once parked), paused (it looks when
            # resumed), or over, when its row is only left over.
            facts = await self.store.facts(execution_id)
            if facts is None or facts.status in TERMINAL:
                await self.store.remove_waiter(execution_id)

    async def _trigger(
        self, workflow: WorkflowRecord, event: StoredEvent, answer: EventAnswer
    ) -> None:
        from app.execution.manager import RunRequest

        trigger = workflow.definition.get("on") or {}
        view = event.view()
        when = trigger.get("when")
        try:
            if when and not compile_expression(when).evaluate({"event": view}):
                return
        except (ExpressionError, TurnoutError) as exc:
            answer.errors.append({"workflow": workflow.name, "code": exc.code, "message": str(exc)})
            return
        request = RunRequest(
            workflow_id=workflow.name,
            version=workflow.version,
            input=view,
            mode="queued",
            metadata={"trigger": {"eventId": event.event_id, "event": event.name}},
            idempotency_key=trigger_key(event.namespace, event.event_id, workflow.name),
            namespace=event.namespace,
        )
        try:
            submission = await self.submit(request)
        except TurnoutError as exc:
            answer.errors.append(
                {"workflow": workflow.name, "code": exc.code, "message": exc.message}
            )
            return
        record = submission.started.record
        answer.runs.append(
            {
                "workflow": workflow.name,
                "version": record.workflow_version,
                "executionId": str(record.id),
            }
        )


__all__ = ["EventAnswer", "EventIntake", "trigger_key"]
