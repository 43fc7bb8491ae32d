"""Schedules: their rows, the due ones, and the guarded advance that hands a slot on once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, exists, func, insert, literal, select, update
from sqlalchemy.engine import RowMapping

from app.engine.state import utcnow
from app.engine.status import TERMINAL
from app.store.base import StoreBase, execution_record
from app.store.records import ExecutionRecord
from app.store.tables import schedules, workflow_executions, workflows


@dataclass(slots=True)
class ScheduleRecord:
    id: UUID
    namespace: str
    workflow_name: str
    workflow_version: str | None
    cron: str | None
    timezone: str
    every_ms: int | None
    input: Any
    mode: str
    priority: int
    tags: list[str]
    overlap: str
    catchup_window_ms: int
    jitter_ms: int
    paused: bool
    next_slot: datetime
    buffered_slot: datetime | None
    revision: int
    fired: int
    skipped: int
    last_slot: datetime | None
    last_error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Advance:
    """One guarded step of a schedule's state: applied only if `revision` is still current."""

    next_slot: datetime
    fired: int = 0
    skipped: int = 0
    last_slot: datetime | None = None
    buffered_slot: datetime | None = None
    set_buffer: bool = False  # write `buffered_slot` (None clears it)
    last_error: dict[str, Any] | None = None
    set_error: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def schedule_record(row: RowMapping) -> ScheduleRecord:
    return ScheduleRecord(**{name: row[name] for name in ScheduleRecord.__slots__})


class ScheduleStore(StoreBase):
    """Every read and write of the `schedules` table."""

    async def create(self, values: dict[str, Any]) -> ScheduleRecord:
        now = utcnow()
        row = {"created_at": now, "updated_at": now, "revision": 1, **values}
        async with self._write() as conn:
            await conn.execute(insert(schedules), [row])
        found = await self.get(values["id"])
        assert found is not None
        return found

    async def get(self, schedule_id: UUID, namespace: str | None = None) -> ScheduleRecord | None:
        query = select(schedules).where(schedules.c.id == schedule_id)
        if namespace is not None:
            query = query.where(schedules.c.namespace == namespace)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return schedule_record(row) if row else None

    async def page(
        self, namespace: str, *, workflow: str | None, limit: int, after: UUID | None
    ) -> tuple[list[ScheduleRecord], bool]:
        """By id (a stable order for the cursor); `more` when another page follows."""
        query = (
            select(schedules)
            .where(schedules.c.namespace == namespace)
            .order_by(schedules.c.id)
            .limit(limit + 1)
        )
        if workflow:
            query = query.where(schedules.c.workflow_name == workflow)
        if after is not None:
            query = query.where(schedules.c.id > after)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [schedule_record(r) for r in rows[:limit]], len(rows) > limit

    async def update(
        self, schedule_id: UUID, namespace: str, values: dict[str, Any]
    ) -> ScheduleRecord | None:
        """A user's change: always applied. One that moves the slots bumps the revision, so a
        pass racing it does not move them again; one that does not (input, pause) leaves the
        racing pass to finish its count."""
        moves = {"next_slot", "buffered_slot"} & values.keys()
        bump = {"revision": schedules.c.revision + 1} if moves else {}
        sql = (
            update(schedules)
            .where(schedules.c.id == schedule_id, schedules.c.namespace == namespace)
            .values(**values, **bump, updated_at=utcnow())
        )
        async with self._write() as conn:
            changed = (await conn.execute(sql)).rowcount
        return await self.get(schedule_id) if changed else None

    async def delete(self, schedule_id: UUID, namespace: str) -> bool:
        sql = delete(schedules).where(
            schedules.c.id == schedule_id, schedules.c.namespace == namespace
        )
        async with self._write() as conn:
            return bool((await conn.execute(sql)).rowcount)

    async def due(self, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules whose next slot has come, or that hold a buffered slot."""
        query = (
            select(schedules)
            .where(
                schedules.c.paused.is_(False),
                (schedules.c.next_slot <= now) | schedules.c.buffered_slot.is_not(None),
            )
            .order_by(schedules.c.next_slot)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [schedule_record(r) for r in rows]

    async def advance(self, record: ScheduleRecord, step: Advance) -> bool:
        """Move the schedule on, if nobody did since `record` was read (True: this one did)."""
        values: dict[str, Any] = {
            "next_slot": step.next_slot,
            "fired": schedules.c.fired + step.fired,
            "skipped": schedules.c.skipped + step.skipped,
            "revision": schedules.c.revision + 1,
            "updated_at": utcnow(),
            **step.extra,
        }
        if step.last_slot is not None:
            values["last_slot"] = step.last_slot
        if step.set_buffer:
            values["buffered_slot"] = step.buffered_slot
        if step.set_error:
            values["last_error"] = step.last_error
        sql = (
            update(schedules)
            .where(schedules.c.id == record.id, schedules.c.revision == record.revision)
            .values(**values)
        )
        async with self._write() as conn:
            return bool((await conn.execute(sql)).rowcount)

    async def active_runs(self, schedule_id: UUID) -> list[UUID]:
        """The schedule's executions that have not ended (what an overlap policy looks at)."""
        query = select(workflow_executions.c.id).where(
            workflow_executions.c.schedule_id == schedule_id,
            workflow_executions.c.status.not_in([str(s) for s in TERMINAL]),
        )
        async with self.engine.connect() as conn:
            return list((await conn.scalars(query)).all())

    async def fired_slot(self, schedule_id: UUID, slot: datetime) -> bool:
        query = select(func.count()).where(
            workflow_executions.c.schedule_id == schedule_id,
            workflow_executions.c.schedule_slot == slot,
        )
        async with self.engine.connect() as conn:
            return bool(await conn.scalar(query))

    async def recent_runs(self, schedule_id: UUID, limit: int = 20) -> list[ExecutionRecord]:
        query = (
            select(workflow_executions)
            .where(workflow_executions.c.schedule_id == schedule_id)
            .order_by(workflow_executions.c.schedule_slot.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [execution_record(r) for r in rows]

    async def unstarted_auto_starts(
        self, since: datetime, until: datetime | None = None, limit: int = 100
    ) -> list[tuple[str, str, str]]:
        """`autoStart` versions registered since `since` (and by `until`) whose run does not
        exist (the process that registered one died before starting it): (namespace, name,
        version)."""
        w = workflows
        key = literal("autostart:") + w.c.namespace + ":" + w.c.name + ":" + w.c.version
        started = exists().where(workflow_executions.c.idempotency_key == key)
        query = (
            select(w.c.namespace, w.c.name, w.c.version)
            .where(
                w.c.created_at >= since,
                w.c.definition["autoStart"].as_boolean().is_(True),
                ~started,
            )
            .order_by(w.c.created_at)
            .limit(limit)
        )
        if until is not None:
            query = query.where(w.c.created_at <= until)
        async with self.engine.connect() as conn:
            return [(r.namespace, r.name, r.version) for r in await conn.execute(query)]
