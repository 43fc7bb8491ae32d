"""What a runner writes: claims, lease-fenced checkpoints, step upserts, events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, case, column, func, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.state import StepState, step_order, utcnow
from app.engine.status import TERMINAL, Status, can_transition
from app.errors import LeaseLost
from app.jsonvalue import dumps
from app.store import pg_statements
from app.store.base import StoreBase, execution_record, ms
from app.store.outbox import outbox_json
from app.store.records import Checkpoint, EventRecord, ExecutionRecord, numbered_events
from app.store.tables import execution_events, execution_steps, workflow_executions

_STEP_FIELDS = ("status", "attempt", "started_at", "completed_at", "output", "error", "state")


class RunStore(StoreBase):
    """Writes of whoever holds an execution's lease."""

    async def claim(
        self, execution_id: UUID, owner: str, lease_ms: int, event: tuple[str, dict[str, Any]]
    ) -> tuple[ExecutionRecord, EventRecord] | None:
        """Take an execution to run: pending, due waiting, or running with an expired lease.

        Only executions without flow control: the others go through `claim_gated`."""
        now = utcnow()
        if self.dialect == "postgresql":
            deliveries = outbox_json(self.outbox, [event])
            sql = _claim_sql(gated=False, outbox=deliveries is not None)
            params = _claim_params(execution_id, owner, lease_ms, event, now, deliveries)
            row = (await self._autocommit(sql, params)).mappings().first()
            return _claimed(execution_id, row, event, now)
        async with self._write() as conn:
            return await self._claim_in(conn, execution_id, owner, lease_ms, event, now, False)

    async def _claim_in(
        self,
        conn: AsyncConnection,
        execution_id: UUID,
        owner: str,
        lease_ms: int,
        event: tuple[str, dict[str, Any]],
        now: datetime,
        gated: bool,
    ) -> tuple[ExecutionRecord, EventRecord] | None:
        """The claim inside a caller's transaction (`gated`: also a row with flow control)."""
        if self.dialect == "postgresql":
            deliveries = outbox_json(self.outbox, [event])
            sql = _claim_sql(gated=gated, outbox=deliveries is not None)
            params = _claim_params(execution_id, owner, lease_ms, event, now, deliveries)
            row = (await conn.execute(sql, params)).mappings().first()
            return _claimed(execution_id, row, event, now)
        claimable = or_(
            workflow_executions.c.status == Status.PENDING,
            and_(
                workflow_executions.c.status == Status.WAITING, workflow_executions.c.wake_at <= now
            ),
            and_(
                workflow_executions.c.status == Status.RUNNING,
                workflow_executions.c.lease_expires_at < now,
            ),
        )
        stmt = (
            update(workflow_executions)
            # A control request still on the row (an orphaned runner's, or one left on a
            # pending or waiting row) is applied by the new runner at once (JobRunner.run).
            .where(workflow_executions.c.id == execution_id, claimable)
            .values(
                status=Status.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + ms(lease_ms),
                started_at=func.coalesce(workflow_executions.c.started_at, now),
                updated_at=now,
                wake_at=None,
                last_seq=workflow_executions.c.last_seq + 1,
                recoveries=case(
                    (
                        workflow_executions.c.status == Status.RUNNING,
                        workflow_executions.c.recoveries + 1,
                    ),
                    else_=workflow_executions.c.recoveries,
                ),
            )
            .returning(*workflow_executions.c)
        )
        if gated:
            stmt = stmt.values(pending_reason=None)
        else:
            stmt = stmt.where(workflow_executions.c.flow.is_(None))
        row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return None
        record = execution_record(row)
        stored = await self._insert_events(
            conn, numbered_events(execution_id, record.last_seq, [event], now)
        )
        return await self._with_steps(conn, record), stored[0]

    async def find_orphans(self, *, pending_grace_ms: int, limit: int) -> list[tuple[UUID, int]]:
        """Executions that may have lost their job: (id, priority), oldest first.

        `pending` for longer than the grace, `running` with an expired lease, and `waiting`
        past its wake-up by more than the grace. Terminal and paused rows never qualify."""
        now = utcnow()
        stale = now - ms(pending_grace_ms)
        orphaned = or_(
            and_(
                workflow_executions.c.status == Status.PENDING,
                workflow_executions.c.updated_at < stale,
            ),
            and_(
                workflow_executions.c.status == Status.RUNNING,
                workflow_executions.c.lease_expires_at < now,
            ),
            and_(
                workflow_executions.c.status == Status.WAITING,
                workflow_executions.c.wake_at < stale,
            ),
        )
        query = (
            select(workflow_executions.c.id, workflow_executions.c.priority)
            .where(orphaned)
            .order_by(workflow_executions.c.updated_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.id, row.priority) for row in rows]

    async def checkpoint(
        self, execution_id: UUID, owner: str, cp: Checkpoint, lease_ms: int
    ) -> tuple[list[EventRecord], str | None]:
        """Persist a runner's progress in one transaction; fenced by the lease.

        Returns the stored events and any control action requested meanwhile."""
        now = utcnow()
        values: dict[str, Any] = {
            "updated_at": now,
            "lease_expires_at": None if cp.release_lease else now + ms(lease_ms),
            **cp.values,
        }
        if cp.release_lease:
            values["lease_owner"] = None
        if cp.status is not None:
            if not can_transition(Status.RUNNING, cp.status):
                raise ValueError(f"a runner cannot move an execution to {cp.status}")
            values["status"] = str(cp.status)
            if cp.status in TERMINAL:
                values.setdefault("completed_at", now)
        row = await self._write_checkpoint(execution_id, owner, cp, values, now)
        if row is None:
            raise LeaseLost(f"execution {execution_id} is no longer leased by {owner}")
        stored = numbered_events(execution_id, row.last_seq, cp.events, now, cp.event_times)
        return stored, row.control_action

    async def _write_checkpoint(
        self,
        execution_id: UUID,
        owner: str,
        cp: Checkpoint,
        values: dict[str, Any],
        now: datetime,
    ) -> Any:
        """The fenced write: one statement on Postgres, a transaction of several on SQLite.
        Returns the row's new `last_seq` and `control_action`, or None if the fence failed."""
        if self.dialect == "postgresql":
            deliveries = outbox_json(self.outbox, cp.events)
            sql = pg_statements.checkpoint_sql(tuple(values), deliveries is not None)
            params = pg_statements.checkpoint_params(
                execution_id,
                owner,
                values,
                pg_statements.events_json(cp.events, cp.event_times, now),
                len(cp.events),
                pg_statements.steps_json(cp.steps),
                now,
            )
            params["outbox"] = deliveries
            return (await self._autocommit(sql, params)).first()
        stmt = (
            update(workflow_executions)
            .where(
                workflow_executions.c.id == execution_id,
                workflow_executions.c.lease_owner == owner,
                workflow_executions.c.status == Status.RUNNING,
            )
            .values(last_seq=workflow_executions.c.last_seq + len(cp.events), **values)
            .returning(workflow_executions.c.last_seq, workflow_executions.c.control_action)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            await self._insert_events(
                conn, numbered_events(execution_id, row.last_seq, cp.events, now, cp.event_times)
            )
            if cp.steps:
                await self._upsert_steps(conn, execution_id, cp.steps, now)
        return row

    async def _upsert_steps(
        self, conn: AsyncConnection, execution_id: UUID, steps: Sequence[StepState], now: datetime
    ) -> None:
        rows = [
            {"execution_id": execution_id, **pg_statements.step_row(s), "updated_at": now}
            for s in steps
        ]
        stmt = sqlite.insert(execution_steps)  # the statements path is SQLite's only
        stmt = stmt.on_conflict_do_update(
            index_elements=[execution_steps.c.execution_id, execution_steps.c.step_key],
            set_={name: stmt.excluded[name] for name in (*_STEP_FIELDS, "updated_at")},
        )
        await conn.execute(stmt, rows)

    async def events_after(
        self, execution_id: UUID, after: int, limit: int = 1000
    ) -> list[EventRecord]:
        query = (
            select(execution_events)
            .where(execution_events.c.execution_id == execution_id, execution_events.c.seq > after)
            .order_by(execution_events.c.seq)
            .limit(limit)
        )
        return await self._read_events(query)


def _claim_sql(*, gated: bool, outbox: bool) -> Any:
    columns = tuple(c.name for c in workflow_executions.c)
    return pg_statements.claim_sql(columns, gated, outbox).columns(
        *workflow_executions.c, column("steps_json", JSONB)
    )


def _claim_params(
    execution_id: UUID,
    owner: str,
    lease_ms: int,
    event: tuple[str, dict[str, Any]],
    now: datetime,
    deliveries: str | None,
) -> dict[str, Any]:
    return {
        "outbox": deliveries,
        "id": execution_id,
        "owner": owner,
        "expires": now + ms(lease_ms),
        "now": now,
        "type": event[0],
        "data": dumps(event[1]),
    }


def _claimed(
    execution_id: UUID, row: Any, event: tuple[str, dict[str, Any]], now: datetime
) -> tuple[ExecutionRecord, EventRecord] | None:
    if row is None:
        return None
    record = execution_record(row)
    record.steps = sorted(
        (pg_statements.step_from_json(s) for s in row["steps_json"]), key=step_order
    )
    return record, numbered_events(execution_id, record.last_seq, [event], now)[0]
