"""Pause, resume, cancel, retry and human input: the database decides, the runner obeys."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from uuid import UUID

from app.config import Settings
from app.engine.status import TERMINAL, Status
from app.errors import InputInvalid, InvalidTransition, WorkflowNotFound
from app.events.bus import EventBus
from app.execution.queue import ExecutionQueue
from app.jsonschemas import SchemaUnusable, validate
from app.store.records import EventRecord, ExecutionRecord
from app.store.repository import Repository

log = logging.getLogger(__name__)

Signal = Literal["cancel", "pause", "pause_abort"]


class ControlSignals(Protocol):
    """Carries a control request to whichever process runs the execution."""

    async def send(self, execution_id: UUID, action: Signal, by: str | None = None) -> None: ...


@dataclass(slots=True)
class ControlResult:
    record: ExecutionRecord
    changed: bool  # False when the request was already satisfied (idempotent repeat)


async def stop_at_rest(
    repo: Repository,
    bus: EventBus,
    execution_id: UUID,
    action: str,
    by: str | None,
    current: str,
) -> bool:
    """Cancel or pause an execution nobody runs (pending, waiting, paused): one guarded
    transition from `current`, which also clears any control request left on the row.
    False when the row was no longer `current`."""
    target = Status.CANCELLED if action == "cancel" else Status.PAUSED
    event_type = "execution.cancelled" if target == Status.CANCELLED else "execution.paused"
    data: dict[str, Any] = {"from": current}
    if by is not None:
        data["requestedBy"] = by
    values: dict[str, Any] = {"control_action": None, "lease_owner": None, "wake_at": None}
    if target == Status.CANCELLED:
        data["error"] = values["error"] = {
            "code": "cancelled",
            "message": f"cancelled by {by}" if by else "cancelled",
        }
    stored = await repo.transition(
        execution_id,
        target,
        (event_type, data),
        values=values,
        sources=[Status(current)],
        end_open_steps=target == Status.CANCELLED,
    )
    if not isinstance(stored, EventRecord):
        return False
    await bus.publish([stored])
    return True


class ExecutionControl:
    """Every control verb: a guarded transition when nothing runs, a signal when it does."""

    def __init__(
        self,
        *,
        settings: Settings,
        repo: Repository,
        bus: EventBus,
        queue: ExecutionQueue,
        signals: ControlSignals,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        self.queue = queue
        self.signals = signals

    async def cancel(self, execution_id: UUID, by: str) -> ControlResult:
        return await self._stop(execution_id, "cancel", Status.CANCELLED, by)

    async def pause(self, execution_id: UUID, by: str, *, abort: bool = False) -> ControlResult:
        return await self._stop(
            execution_id, "pause_abort" if abort else "pause", Status.PAUSED, by
        )

    async def _stop(
        self, execution_id: UUID, action: Signal, target: Status, by: str
    ) -> ControlResult:
        saw_running = requested = False
        for _ in range(5):  # the status may move under us; re-read and decide again
            record = await self.repo.get_execution(execution_id, steps=False)
            if record.status == target:
                # Already so (an idempotent repeat), unless the runner obeyed our request.
                return ControlResult(await self.repo.get_execution(execution_id), requested)
            if saw_running and record.status in TERMINAL:
                # It ended on its own while we asked: too late, and the answer says so.
                return ControlResult(await self.repo.get_execution(execution_id), False)
            if record.status == Status.RUNNING:
                saw_running = True
                if await self.repo.request_control(execution_id, action, by):
                    requested = True
                    await self.signals.send(execution_id, action, by)
                    settled = await self._settled(execution_id, target)
                    # Obeyed, or yet to answer: the runner applies it whenever it comes to
                    # rest (see ExecutionSession._settle), so the request is not lost.
                    if settled.status in (target, Status.RUNNING):
                        return ControlResult(settled, True)
                    if settled.status in TERMINAL:
                        return ControlResult(settled, False)
                    # It came to rest without obeying (parked as waiting, handed back to
                    # the queue, paused when cancel was asked): act on the resting row.
                continue
            if record.status not in (Status.PENDING, Status.PAUSED, Status.WAITING):
                raise InvalidTransition(
                    record.status,
                    target,
                    f"cannot {action.split('_')[0]} a {record.status} execution",
                )
            if await stop_at_rest(self.repo, self.bus, execution_id, action, by, record.status):
                return ControlResult(await self.repo.get_execution(execution_id), True)
        record = await self.repo.get_execution(execution_id)
        raise InvalidTransition(record.status, target, "the execution kept changing; try again")

    async def _settled(self, execution_id: UUID, target: Status) -> ExecutionRecord:
        """Wait (briefly) for the runner to obey, so the answer shows the result."""
        deadline = time.monotonic() + self.settings.control_wait_ms / 1000
        while True:
            record = await self.repo.get_execution(execution_id)
            if record.status != Status.RUNNING or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(0.02)

    async def resume(self, execution_id: UUID, by: str) -> ControlResult:
        record = await self.repo.get_execution(execution_id, steps=False)
        if record.status != Status.PAUSED:
            raise InvalidTransition(
                record.status,
                Status.PENDING,
                f"only a paused execution can resume ({record.status})",
            )
        stored = await self.repo.transition(
            execution_id,
            Status.PENDING,
            ("execution.resumed", {"requestedBy": by}),
            values={"execution_mode": "queued"},
            sources=[Status.PAUSED],
        )
        if not isinstance(stored, EventRecord):
            current = await self.repo.get_execution(execution_id, steps=False)
            raise InvalidTransition(current.status, Status.PENDING)
        await self.bus.publish([stored])
        await self._enqueue(record)
        return ControlResult(await self.repo.get_execution(execution_id), True)

    async def retry(
        self,
        execution_id: UUID,
        by: str,
        *,
        from_: Literal["failed", "start"] = "failed",
        version: str | None = None,
    ) -> ControlResult:
        record = await self.repo.get_execution(execution_id, steps=False)
        if record.status not in (Status.FAILED, Status.CANCELLED):
            raise InvalidTransition(
                record.status,
                Status.PENDING,
                f"only a failed or cancelled execution can be retried ({record.status})",
            )
        definition = None
        new_version = None
        if version is not None:
            if record.workflow_id is None:
                raise WorkflowNotFound("this execution did not come from a registered workflow")
            stored_wf = await self.repo.get_workflow(record.workflow_id, version, record.namespace)
            if stored_wf is None:
                raise WorkflowNotFound(f"no version '{version}' of '{record.workflow_id}'")
            definition, new_version = stored_wf.definition, stored_wf.version
        event = await self.repo.retry_execution(
            record,
            by=by,
            from_start=from_ == "start" or definition is not None,
            definition=definition,
            version=new_version,
        )
        if event is None:
            current = await self.repo.get_execution(execution_id, steps=False)
            raise InvalidTransition(current.status, Status.PENDING)
        await self.bus.publish([event])
        await self._enqueue(record)
        return ControlResult(await self.repo.get_execution(execution_id), True)

    async def deliver_input(
        self, execution_id: UUID, node_id: str, data: Any, by: str
    ) -> ControlResult:
        record = await self.repo.get_execution(execution_id)
        step = next((s for s in record.steps if s.key == node_id), None)
        waiting = (
            record.status == Status.WAITING
            and step is not None
            and step.status == "waiting"
            and step.state.get("waitReason") == "human_input"
        )
        if not waiting:
            raise InvalidTransition(
                record.status,
                Status.PENDING,
                f"node '{node_id}' is not waiting for input (execution is {record.status})",
            )
        assert step is not None
        schema = (step.state.get("waitData") or {}).get("schema")
        if schema:
            try:
                errors = validate(schema, data, formats=False)
            except SchemaUnusable as exc:  # only a schema stored before refs were checked
                raise InputInvalid(f"the node's schema cannot be used: it {exc}") from None
            problems = [{"loc": ["data", *e.absolute_path], "message": e.message} for e in errors]
            if problems:
                raise InputInvalid("the input does not match the node's schema", problems)
        event = await self.repo.deliver_input(execution_id, node_id, data, by)
        if event is None:
            current = await self.repo.get_execution(execution_id, steps=False)
            raise InvalidTransition(current.status, Status.PENDING, "the input was not accepted")
        await self.bus.publish([event])
        await self._enqueue(record)
        return ControlResult(await self.repo.get_execution(execution_id), True)

    async def _enqueue(self, record: ExecutionRecord) -> None:
        try:
            await self.queue.enqueue(record.id, priority=record.priority)
        except Exception:
            log.exception("enqueue failed; the reconciler will retry", extra={"id": str(record.id)})
