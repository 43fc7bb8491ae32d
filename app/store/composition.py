"""The SQL of composition: parent links, wake-ups, events and their waiters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from app.engine.state import utcnow
from app.engine.status import TERMINAL, Status, StepStatus
from app.store.base import StoreBase, ms
from app.store.records import EventRecord, WorkflowRecord, numbered_events
from app.store.tables import (
    event_waits,
    events,
    execution_steps,
    workflow_executions,
    workflows,
)

_OPEN = [str(s) for s in Status if s not in TERMINAL]


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What composition needs to know of an execution (no steps, no payloads but the result)."""

    id: UUID
    namespace: str
    status: str
    priority: int
    depth: int
    workflow_name: str
    workflow_version: str | None
    result: Any
    error: dict[str, Any] | None
    parent_id: UUID | None
    parent_step_key: str | None


@dataclass(frozen=True, slots=True)
class Ended:
    """What the end of a run means for others: a parent to wake, children to cancel."""

    status: str
    parent_id: UUID | None
    parent_step_key: str | None
    open_children: bool


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    namespace: str
    event_id: str
    name: str
    data: Any
    received_at: datetime

    def view(self) -> dict[str, Any]:
        """What a run sees of it: the `wait.event` output and a trigger's input."""
        return {
            "id": self.event_id,
            "name": self.name,
            "data": self.data,
            "receivedAt": self.received_at.isoformat().replace("+00:00", "Z"),
        }


def _facts(row: RowMapping) -> RunFacts:
    return RunFacts(
        id=row["id"],
        namespace=row["namespace"],
        status=row["status"],
        priority=row["priority"],
        depth=row["child_depth"] or 0,
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        result=row["result"],
        error=row["error"],
        parent_id=row["parent_execution_id"],
        parent_step_key=row["parent_step_key"],
    )


def _event(row: RowMapping) -> StoredEvent:
    return StoredEvent(
        row["seq"], row["namespace"], row["event_id"], row["name"], row["data"], row["received_at"]
    )


_FACT_COLUMNS = (
    workflow_executions.c.id,
    workflow_executions.c.namespace,
    workflow_executions.c.status,
    workflow_executions.c.priority,
    workflow_executions.c.child_depth,
    workflow_executions.c.workflow_name,
    workflow_executions.c.workflow_version,
    workflow_executions.c.result,
    workflow_executions.c.error,
    workflow_executions.c.parent_execution_id,
    workflow_executions.c.parent_step_key,
)


class CompositionStore(StoreBase):
    """Reads and guarded writes for child workflows, events and triggers."""

    async def facts(self, execution_id: UUID) -> RunFacts | None:
        query = select(*_FACT_COLUMNS).where(workflow_executions.c.id == execution_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _facts(row) if row else None

    async def ended(self, execution_id: UUID) -> Ended | None:
        child = workflow_executions.alias("c")
        has_open = (
            exists()
            .where(child.c.parent_execution_id == workflow_executions.c.id)
            .where(child.c.status.in_(_OPEN))
        )
        query = select(
            workflow_executions.c.status,
            workflow_executions.c.parent_execution_id,
            workflow_executions.c.parent_step_key,
            has_open.label("open_children"),
        ).where(workflow_executions.c.id == execution_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Ended(
            row.status, row.parent_execution_id, row.parent_step_key, bool(row.open_children)
        )

    async def children(self, execution_id: UUID) -> list[RunFacts]:
        """The executions started by this one's steps, oldest first."""
        query = (
            select(*_FACT_COLUMNS)
            .where(workflow_executions.c.parent_execution_id == execution_id)
            .order_by(workflow_executions.c.created_at, workflow_executions.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_facts(r) for r in rows]

    async def open_children(self, execution_id: UUID) -> list[UUID]:
        query = select(workflow_executions.c.id).where(
            workflow_executions.c.parent_execution_id == execution_id,
            workflow_executions.c.status.in_(_OPEN),
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def wake(self, execution_id: UUID, data: dict[str, Any]) -> EventRecord | None:
        """A waiting execution becomes runnable (`execution.resumed` with `data`); None when
        it was not waiting (it is still parking, paused, or over)."""
        now = utcnow()
        async with self._write() as conn:
            last_seq = await self._make_runnable(conn, execution_id, now)
            if last_seq is None:
                return None
            event = ("execution.resumed", data)
            stored = await self._insert_events(
                conn, numbered_events(execution_id, last_seq, [event], now)
            )
        return stored[0]

    async def record_event(
        self, namespace: str, name: str, data: Any, event_id: str | None
    ) -> tuple[StoredEvent, bool]:
        """Store an event once per (namespace, id): the stored one, and whether it is new."""
        key = event_id or uuid.uuid4().hex
        values = {
            "namespace": namespace,
            "event_id": key,
            "name": name,
            "data": data,
            "received_at": utcnow(),
        }
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = (
            dialect.insert(events)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[events.c.namespace, events.c.event_id])
            .returning(events.c.seq)
        )
        async with self._write() as conn:
            created = (await conn.execute(stmt)).first() is not None
        stored = await self.get_event(namespace, key)
        assert stored is not None  # just written, or written before: events are not deleted
        return stored, created

    async def get_event(self, namespace: str, event_id: str) -> StoredEvent | None:
        query = select(events).where(events.c.namespace == namespace, events.c.event_id == event_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _event(row) if row else None

    async def events_since(self, namespace: str, name: str, since: datetime) -> list[StoredEvent]:
        """Events of `name` received at or after `since`, in arrival order."""
        query = (
            select(events)
            .where(
                events.c.namespace == namespace,
                events.c.name == name,
                events.c.received_at >= since,
            )
            .order_by(events.c.seq)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_event(r) for r in rows]

    async def count_events_since(self, namespace: str, name: str, since: datetime) -> int:
        query = select(func.count()).where(
            events.c.namespace == namespace, events.c.name == name, events.c.received_at >= since
        )
        async with self.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def delete_events_before(self, cutoff: datetime, limit: int) -> int:
        """Retention: events received before `cutoff`, oldest first, `limit` at most."""
        oldest = (
            select(events.c.seq).where(events.c.received_at < cutoff).order_by(events.c.seq)
        ).limit(limit)
        async with self._write() as conn:
            result = await conn.execute(delete(events).where(events.c.seq.in_(oldest)))
        return int(result.rowcount or 0)

    async def add_waiter(
        self, execution_id: UUID, step_key: str, namespace: str, name: str
    ) -> None:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = (
            dialect.insert(event_waits)
            .values(
                execution_id=execution_id,
                step_key=step_key,
                namespace=namespace,
                name=name,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(
                index_elements=[event_waits.c.execution_id, event_waits.c.step_key]
            )
        )
        async with self._write() as conn:
            await conn.execute(stmt)

    async def remove_waiter(self, execution_id: UUID, step_key: str | None = None) -> None:
        stmt = delete(event_waits).where(event_waits.c.execution_id == execution_id)
        if step_key is not None:
            stmt = stmt.where(event_waits.c.step_key == step_key)
        async with self._write() as conn:
            await conn.execute(stmt)

    async def waiters(self, namespace: str, name: str) -> list[UUID]:
        query = (
            select(event_waits.c.execution_id)
            .where(event_waits.c.namespace == namespace, event_waits.c.name == name)
            .distinct()
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def missed_wakeups(self, grace_ms: int, limit: int) -> list[tuple[UUID, dict[str, Any]]]:
        """Waiting runs that should have been woken more than `grace_ms` ago and were not (the
        process that ended the child, or stored the event, died before waking them): a child
        of the waiting step ended after the run parked, or an event of a name it waits on
        arrived after it parked."""
        stale = utcnow() - ms(grace_ms)
        parent = workflow_executions.alias("p")
        child = workflow_executions.alias("c")
        children = (
            select(parent.c.id, child.c.id.label("child_id"), child.c.parent_step_key)
            .join(child, child.c.parent_execution_id == parent.c.id)
            .join(
                execution_steps,
                and_(
                    execution_steps.c.execution_id == parent.c.id,
                    execution_steps.c.step_key == child.c.parent_step_key,
                    execution_steps.c.attempt == child.c.parent_attempt,
                ),
            )
            .where(
                parent.c.status == Status.WAITING,
                execution_steps.c.status == StepStatus.WAITING,
                child.c.status.in_([str(s) for s in TERMINAL]),
                child.c.completed_at < stale,
                parent.c.updated_at < stale,
            )
            .limit(limit)
        )
        arrived = (
            select(event_waits.c.execution_id, event_waits.c.step_key, event_waits.c.name)
            .join(parent, parent.c.id == event_waits.c.execution_id)
            .where(
                parent.c.status == Status.WAITING,
                exists().where(
                    events.c.namespace == event_waits.c.namespace,
                    events.c.name == event_waits.c.name,
                    events.c.received_at > parent.c.updated_at,
                    events.c.received_at < stale,
                ),
            )
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            found: list[tuple[UUID, dict[str, Any]]] = [
                (
                    r.id,
                    {
                        "reason": "child_ended",
                        "nodeId": r.parent_step_key,
                        "childExecutionId": str(r.child_id),
                    },
                )
                for r in await conn.execute(children)
            ]
            found += [
                (r.execution_id, {"reason": "event", "nodeId": r.step_key, "event": r.name})
                for r in await conn.execute(arrived)
            ]
        return found

    async def triggered_by(self, namespace: str, name: str) -> list[WorkflowRecord]:
        """The newest version of each workflow whose newest version declares
        `on.event == name`."""
        event_name = workflows.c.definition["on"]["event"].as_string()
        named = (
            select(workflows.c.name)
            .where(workflows.c.namespace == namespace, event_name == name)
            .distinct()
        )
        newest = (
            select(workflows.c.name, func.max(workflows.c.created_at).label("at"))
            .where(workflows.c.namespace == namespace, workflows.c.name.in_(named))
            .group_by(workflows.c.name)
            .subquery()
        )
        query = (
            select(workflows)
            .join(
                newest,
                and_(workflows.c.name == newest.c.name, workflows.c.created_at == newest.c.at),
            )
            .where(workflows.c.namespace == namespace)
            .order_by(workflows.c.name)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found = [
            WorkflowRecord(r["id"], r["name"], r["version"], r["definition"], r["created_at"])
            for r in rows
        ]
        return [w for w in found if (w.definition.get("on") or {}).get("event") == name]
