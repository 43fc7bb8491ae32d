"""Status changes asked for from outside the runner (control verbs), and the registry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.engine.state import utcnow
from app.engine.status import TERMINAL, Status, StepStatus, sources_of
from app.store.base import E, S, StoreBase, W, workflow_record
from app.store.records import EventRecord, ExecutionRecord, WorkflowRecord


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
            changes["last_seq"] = E.c.last_seq + 1
        if target in TERMINAL:
            changes["completed_at"] = now
        stmt = (
            update(E)
            .where(E.c.id == execution_id, E.c.status.in_(allowed))
            .values(**changes)
            .returning(E.c.last_seq)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return False
            if end_open_steps:
                await conn.execute(
                    update(S)
                    .where(
                        S.c.execution_id == execution_id,
                        S.c.status.in_([StepStatus.RUNNING, StepStatus.WAITING]),
                    )
                    .values(status=StepStatus.CANCELLED, completed_at=now, updated_at=now)
                )
            if event is None:
                return None
            stored = await self._insert_events(conn, execution_id, row.last_seq - 1, [event], now)
            return stored[0]

    async def request_control(self, execution_id: UUID, action: str, by: str) -> bool:
        """Ask the runner of a running execution to stop; the runner reads it at its next
        checkpoint (and sooner through the control signal)."""
        stmt = (
            update(E)
            .where(E.c.id == execution_id, E.c.status == Status.RUNNING)
            .values(control_action=action, updated_at=utcnow())
            .returning(E.c.id)
        )
        async with self.engine.begin() as conn:
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
            "attempt": E.c.attempt + 1,
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
            "enqueued_at": now,
            "updated_at": now,
            "metadata": metadata,
            "last_seq": E.c.last_seq + 1,
        }
        if definition is not None:
            values["definition"] = definition
            values["workflow_version"] = version
        stmt = (
            update(E)
            .where(
                E.c.id == record.id,
                E.c.status.in_([Status.FAILED, Status.CANCELLED]),
                E.c.attempt == record.attempt,
            )
            .values(**values)
            .returning(E.c.last_seq, E.c.attempt)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            steps = delete(S).where(S.c.execution_id == record.id)
            if not from_start:
                steps = steps.where(S.c.status != StepStatus.COMPLETED)
            await conn.execute(steps)
            done = await conn.scalar(
                select(func.count())
                .select_from(S)
                .where(S.c.execution_id == record.id, S.c.item_index.is_(None))
            )
            await conn.execute(update(E).where(E.c.id == record.id).values(progress_done=done))
            data = {
                "requestedBy": by,
                "reason": "retry",
                "attempt": row.attempt,
                "from": "start" if from_start else "failed",
            }
            stored = await self._insert_events(
                conn, record.id, row.last_seq - 1, [("execution.resumed", data)], now
            )
        return stored[0]

    async def deliver_input(
        self, execution_id: UUID, node_id: str, data: Any, by: str
    ) -> EventRecord | None:
        """Record a human's answer on the waiting step and make the execution runnable."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(E)
                    .where(E.c.id == execution_id, E.c.status == Status.WAITING)
                    .values(
                        status=Status.PENDING,
                        wake_at=None,
                        updated_at=now,
                        enqueued_at=now,
                        execution_mode="queued",
                        last_seq=E.c.last_seq + 1,
                    )
                    .returning(E.c.last_seq)
                )
            ).first()
            if row is None:
                return None
            step = (
                await conn.execute(
                    select(S.c.state).where(
                        S.c.execution_id == execution_id,
                        S.c.step_key == node_id,
                        S.c.status == StepStatus.WAITING,
                    )
                )
            ).first()
            if step is None:
                await conn.rollback()
                return None
            state = {**(step.state or {}), "input": data, "inputBy": by, "inputAt": now.isoformat()}
            await conn.execute(
                update(S)
                .where(S.c.execution_id == execution_id, S.c.step_key == node_id)
                .values(state=state, updated_at=now)
            )
            stored = await self._insert_events(
                conn,
                execution_id,
                row.last_seq - 1,
                [("execution.resumed", {"requestedBy": by, "reason": "input", "nodeId": node_id})],
                now,
            )
        return stored[0]


class WorkflowStore(StoreBase):
    """The versioned workflow registry."""

    async def create_workflow(
        self, name: str, version: str, definition: dict[str, Any], namespace: str = "default"
    ) -> WorkflowRecord | None:
        """Register a version; None if this name and version already exist."""
        record = WorkflowRecord(uuid4(), name, version, definition, utcnow())
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(W),
                    [
                        {
                            "id": record.id,
                            "name": name,
                            "version": version,
                            "definition": definition,
                            "created_at": record.created_at,
                            "namespace": namespace,
                        }
                    ],
                )
        except IntegrityError:
            return None
        return record

    async def get_workflow(
        self, name: str, version: str | None = None, namespace: str = "default"
    ) -> WorkflowRecord | None:
        """A given version, or the newest registered one."""
        query = select(W).where(W.c.name == name, W.c.namespace == namespace)
        if version is not None and version != "latest":
            query = query.where(W.c.version == version)
        query = query.order_by(W.c.created_at.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return workflow_record(row) if row else None

    async def list_workflows(
        self, name: str | None = None, namespace: str = "default"
    ) -> list[WorkflowRecord]:
        query = select(W).where(W.c.namespace == namespace)
        query = query.order_by(W.c.name, W.c.created_at.desc())
        if name is not None:
            query = query.where(W.c.name == name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [workflow_record(r) for r in rows]

    async def list_workflow_names(
        self, *, limit: int, after: str | None = None, namespace: str = "default"
    ) -> tuple[list[tuple[WorkflowRecord, int]], bool]:
        """Names in order, each with its newest version and how many it has; more to come?"""
        ranked = select(
            W,
            func.row_number()
            .over(partition_by=W.c.name, order_by=(W.c.created_at.desc(), W.c.version.desc()))
            .label("rank"),
            func.count().over(partition_by=W.c.name).label("versions"),
        )
        ranked = ranked.where(W.c.namespace == namespace)
        if after is not None:
            ranked = ranked.where(W.c.name > after)
        sub = ranked.subquery()
        query = select(sub).where(sub.c.rank == 1).order_by(sub.c.name).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = [(workflow_record(r), int(r["versions"])) for r in rows[:limit]]
        return items, len(rows) > limit

    async def delete_workflow(
        self, name: str, version: str | None = None, namespace: str = "default"
    ) -> list[str]:
        """Unregister one version, or every version of a name; the versions deleted.

        Executions keep their own copy of the definition, so they are not touched."""
        stmt = delete(W).where(W.c.name == name, W.c.namespace == namespace)
        if version is not None:
            stmt = stmt.where(W.c.version == version)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(stmt.returning(W.c.version))).all()
        return [r.version for r in rows]
