"""Shared pieces of the store: table aliases, row mapping, event inserts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import CursorResult, Engine, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from app.engine.state import StepState
from app.engine.status import TERMINAL, Status, StepStatus, can_transition
from app.store import pg_batch
from app.store.database import sqlite_writer
from app.store.outbox import OutboxMatcher, write_deliveries
from app.store.records import (
    Checkpoint,
    EventRecord,
    ExecutionRecord,
    ParentLink,
    WorkflowRecord,
)
from app.store.tables import execution_events, execution_steps, workflow_executions


def ms(value: int | None) -> timedelta:
    return timedelta(milliseconds=value or 0)


_STEP_FIELDS = ("status", "attempt", "started_at", "completed_at", "output", "error", "state")


class StoreBase:
    """The engine, and helpers every part of the repository uses."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: OutboxMatcher | None = None,
        batch_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        # The group-committed statements' engine (app.store.database.create_batch_engine).
        self.batch_engine = batch_engine or engine
        self.dialect = engine.dialect.name
        # The subscriptions an event write adds outbox deliveries for (none by default).
        self.outbox = outbox or OutboxMatcher()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. On SQLite, this process's writers take turns (in order of
        arrival) rather than race for the database's single write lock: none of them fails
        with "database is locked" however many there are (see database.sqlite_writer)."""
        if self.dialect != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        async with sqlite_writer(self.engine), self.engine.begin() as conn:
            yield conn

    async def _autocommit(self, sql: Any, params: dict[str, Any]) -> Any:
        """One statement, atomic on its own: no BEGIN/COMMIT round trips around it. The
        checkout, the statement, the fetch and the return run in one greenlet: one crossing
        of SQLAlchemy's async boundary instead of one per step."""
        return await greenlet_spawn(autocommit, self.engine.sync_engine, sql, params)

    async def _batched(self, sql: Any, params: dict[str, Any]) -> Any:
        """`_autocommit` of a group-committed statement (many runs' creations, claims or
        checkpoints), on the connections that plan it once (`batch_engine`)."""
        return await greenlet_spawn(autocommit, self.batch_engine.sync_engine, sql, params)

    async def _with_steps(self, conn: AsyncConnection, record: ExecutionRecord) -> ExecutionRecord:
        record.steps = await self._load_steps(conn, record.id)
        return record

    async def _load_steps(self, conn: AsyncConnection, execution_id: UUID) -> list[StepState]:
        rows = (
            await conn.execute(
                select(execution_steps)
                .where(execution_steps.c.execution_id == execution_id)
                .order_by(
                    execution_steps.c.started_at.asc().nulls_last(), execution_steps.c.step_key
                )
            )
        ).mappings()
        return [
            StepState(
                key=r["step_key"],
                node_id=r["node_id"],
                item_index=r["item_index"],
                status=StepStatus(r["status"]),
                attempt=r["attempt"],
                started_at=r["started_at"],
                completed_at=r["completed_at"],
                output=r["output"],
                error=r["error"],
                state=r["state"] or {},
            )
            for r in rows
        ]

    async def _read_rows(self, query: Any) -> Sequence[RowMapping]:
        """The rows of one read-only statement. On Postgres it runs with no BEGIN/ROLLBACK
        round trips around it, as `_autocommit` runs a write: in READ COMMITTED a statement
        sees the same with or without them (a stream's open, the hottest read, was six round
        trips where two do)."""
        if self.dialect == "postgresql":
            return (await self._autocommit(query, {})).mappings().all()  # type: ignore[no-any-return]
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).mappings().all()

    async def _read_events(self, query: Any) -> list[EventRecord]:
        rows = await self._read_rows(query)
        return [
            EventRecord(r["execution_id"], r["seq"], r["type"], r["data"], r["created_at"])
            for r in rows
        ]

    async def _make_runnable(
        self, conn: AsyncConnection, execution_id: UUID, now: datetime
    ) -> int | None:
        """A waiting execution becomes pending (queued, for the next claim) on `conn`, taking
        the seq of the `execution.resumed` event the caller writes; None when it was not
        waiting (still parking, paused, or over)."""
        row = (
            await conn.execute(
                update(workflow_executions)
                .where(
                    workflow_executions.c.id == execution_id,
                    workflow_executions.c.status == Status.WAITING,
                )
                .values(
                    status=Status.PENDING,
                    wake_at=None,
                    updated_at=now,
                    execution_mode="queued",
                    last_seq=workflow_executions.c.last_seq + 1,
                )
                .returning(workflow_executions.c.last_seq)
            )
        ).first()
        return None if row is None else int(row.last_seq)

    async def _insert_events(
        self, conn: AsyncConnection, stored: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        """Insert a write's events (of one execution), numbered by `numbered_events`, and
        their outbox deliveries; returns them."""
        if stored:
            await conn.execute(
                insert(execution_events),
                [
                    {
                        "execution_id": e.execution_id,
                        "seq": e.seq,
                        "type": e.type,
                        "data": e.data,
                        "created_at": e.created_at,
                    }
                    for e in stored
                ],
            )
            await write_deliveries(conn, self.outbox, stored)
        return stored

    async def _upsert_steps(
        self, conn: AsyncConnection, execution_id: UUID, steps: Sequence[StepState], now: datetime
    ) -> None:
        rows = [
            {"execution_id": execution_id, **pg_batch.step_row(s), "updated_at": now} for s in steps
        ]
        stmt = sqlite.insert(execution_steps)  # the statements path is SQLite's only
        stmt = stmt.on_conflict_do_update(
            index_elements=[execution_steps.c.execution_id, execution_steps.c.step_key],
            set_={name: stmt.excluded[name] for name in (*_STEP_FIELDS, "updated_at")},
        )
        await conn.execute(stmt, rows)


def checkpoint_values(cp: Checkpoint, lease_ms: int, now: datetime) -> dict[str, Any]:
    """The columns a runner's checkpoint sets: its values, the lease renewed or released,
    the status it moves to (checked against the transitions a runner may make)."""
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
    return values


def autocommit(engine: Engine, sql: Any, params: dict[str, Any]) -> CursorResult[Any]:
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.execute(sql, params)  # buffered: usable after the close


def execution_record(row: RowMapping | dict[str, Any]) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        status=row["status"],
        execution_mode=row["execution_mode"],
        requested_mode=row["requested_mode"],
        priority=row["priority"],
        tags=list(row["tags"] or []),
        attempt=row["attempt"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        input=row["input"],
        result=row["result"],
        error=row["error"],
        complexity=row["complexity"],
        metadata=dict(row["metadata"] or {}),
        definition=row["definition"],
        timeout_ms=row["timeout_ms"],
        elapsed_ms=row["elapsed_ms"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        control_action=row["control_action"],
        wake_at=row["wake_at"],
        last_seq=row["last_seq"],
        progress_done=row["progress_done"],
        progress_total=row["progress_total"],
        recoveries=row.get("recoveries", 0),
        trace_context=row.get("trace_context"),
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        namespace=row.get("namespace") or "default",
        schedule_id=row.get("schedule_id"),
        schedule_slot=row.get("schedule_slot"),
        parent=parent_link(row),
        flow=row.get("flow"),
        pending_reason=row.get("pending_reason"),
    )


def parent_link(row: RowMapping | dict[str, Any]) -> ParentLink | None:
    parent = row.get("parent_execution_id")
    if parent is None:
        return None
    return ParentLink(
        parent, row["parent_step_key"], row.get("parent_attempt") or 1, row.get("child_depth") or 1
    )


def workflow_record(row: RowMapping) -> WorkflowRecord:
    return WorkflowRecord(
        row["id"], row["name"], row["version"], row["definition"], row["created_at"]
    )
