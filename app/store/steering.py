"""Status changes asked for from outside the runner (the control verbs: pause, resume,
cancel, retry, human input)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update

from app.engine.state import utcnow
from app.engine.status import TERMINAL, Status, StepStatus, sources_of
from app.store.base import StoreBase
from app.store.records import EventRecord, ExecutionRecord, numbered_events
from app.store.tables import execution_steps, workflow_executions


class ControlStore(StoreBase):
    """Guarded transitions that need no lease."""

    async def transition(
        self,
        execution_id: UUID,
        target: Status,
        event: tuple[str, dict[str, Any]] | None,
        *,
        values: dict[str, Any] | None = None,
        sources: Iterable[Status] | None = None,
        end_open_steps: bool = False,
    ) -> EventRecord | bool | None:
        """Guarded status change with its event; False when the guard did not match.
        `end_open_steps`: steps left running or waiting end `cancelled` in the same commit."""
        now = utcnow()
        allowed = [str(s) for s in (sources if sources is not None else sources_of(target))]
        changes: dict[str, Any] = {"status": target, "updated_at": now, **(values or {})}
        if event is not None:
            changes["last_seq"] = workflow_executions.c.last_seq + 1
        if target in TERMINAL:
            changes["completed_at"] = now
        stmt = (
            update(workflow_executions)
            .where(
                workflow_executions.c.id == execution_id, workflow_executions.c.status.in_(allowed)
            )
            .values(**changes)
            .returning(workflow_executions.c.last_seq)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return False
            if end_open_steps:
                await conn.execute(
                    update(execution_steps)
                    .where(
                        execution_steps.c.execution_id == execution_id,
                        execution_steps.c.status.in_([StepStatus.RUNNING, StepStatus.WAITING]),
                    )
                    .values(status=StepStatus.CANCELLED, completed_at=now, updated_at=now)
                )
            if event is None:
                return None
            stored = await self._insert_events(
                conn, numbered_events(execution_id, row.last_seq, [event], now)
            )
            return stored[0]

    async def request_control(self, execution_id: UUID, action: str, by: str) -> bool:
        """Ask the runner of a running execution to stop; the runner reads it at its next
        checkpoint (and sooner through the control signal)."""
        stmt = (
            update(workflow_executions)
            .where(
                workflow_executions.c.id == execution_id,
                workflow_executions.c.status == Status.RUNNING,
            )
            .values(control_action=action, updated_at=utcnow())
            .returning(workflow_executions.c.id)
        )
        async with self._write() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def retry_execution(
        self,
        record: ExecutionRecord,
        *,
        by: str,
        from_start: bool,
        definition: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> EventRecord | None:
        """A new attempt of the same execution: completed steps are kept unless `from_start`."""
        now = utcnow()
        history = {
            "attempt": record.attempt,
            "status": record.status,
            "error": record.error,
            "startedAt": record.started_at.isoformat() if record.started_at else None,
            "completedAt": record.completed_at.isoformat() if record.completed_at else None,
        }
        metadata = {**record.metadata, "attempts": [*record.metadata.get("attempts", []), history]}
        values: dict[str, Any] = {
            "status": Status.PENDING,
            "attempt": workflow_executions.c.attempt + 1,
            "error": None,
            "result": None,
            "completed_at": None,
            "started_at": None,
            "elapsed_ms": 0,
            "control_action": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "wake_at": None,
            "execution_mode": "queued",
            "updated_at": now,
            "metadata": metadata,
            "last_seq": workflow_executions.c.last_seq + 1,
        }
        if definition is not None:
            values["definition"] = definition
            values["workflow_version"] = version
        stmt = (
            update(workflow_executions)
            .where(
                workflow_executions.c.id == record.id,
                workflow_executions.c.status.in_([Status.FAILED, Status.CANCELLED]),
                workflow_executions.c.attempt == record.attempt,
            )
            .values(**values)
            .returning(workflow_executions.c.last_seq, workflow_executions.c.attempt)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            steps = delete(execution_steps).where(execution_steps.c.execution_id == record.id)
            if not from_start:
                steps = steps.where(execution_steps.c.status != StepStatus.COMPLETED)
            await conn.execute(steps)
            done = await conn.scalar(
                select(func.count())
                .select_from(execution_steps)
                .where(
                    execution_steps.c.execution_id == record.id,
                    execution_steps.c.item_index.is_(None),
                )
            )
            await conn.execute(
                update(workflow_executions)
                .where(workflow_executions.c.id == record.id)
                .values(progress_done=done)
            )
            data = {
                "requestedBy": by,
                "reason": "retry",
                "attempt": row.attempt,
                "from": "start" if from_start else "failed",
            }
            stored = await self._insert_events(
                conn, numbered_events(record.id, row.last_seq, [("execution.resumed", data)], now)
            )
        return stored[0]

    async def deliver_input(
        self, execution_id: UUID, node_id: str, data: Any, by: str
    ) -> EventRecord | None:
        """Record a human's answer on the waiting step and make the execution runnable."""
        now = utcnow()
        async with self._write() as conn:
            last_seq = await self._make_runnable(conn, execution_id, now)
            if last_seq is None:
                return None
            step = (
                await conn.execute(
                    select(execution_steps.c.state).where(
                        execution_steps.c.execution_id == execution_id,
                        execution_steps.c.step_key == node_id,
                        execution_steps.c.status == StepStatus.WAITING,
                    )
                )
            ).first()
            if step is None:
                await conn.rollback()
                return None
            state = {**(step.state or {}), "input": data, "inputBy": by, "inputAt": now.isoformat()}
            await conn.execute(
                update(execution_steps)
                .where(
                    execution_steps.c.execution_id == execution_id,
                    execution_steps.c.step_key == node_id,
                )
                .values(state=state, updated_at=now)
            )
            stored = await self._insert_events(
                conn,
                numbered_events(
                    execution_id,
                    last_seq,
                    [
                        (
                            "execution.resumed",
                            {"requestedBy": by, "reason": "input", "nodeId": node_id},
                        )
                    ],
                    now,
                ),
            )
        return stored[0]
