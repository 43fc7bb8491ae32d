"""Shared pieces of the store: table aliases, row mapping, event inserts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.engine.state import StepState
from app.engine.status import StepStatus
from app.store.records import EventRecord, ExecutionRecord, WorkflowRecord
from app.store.tables import execution_events, execution_steps, workflow_executions, workflows

E = workflow_executions
S = execution_steps
V = execution_events
W = workflows


def ms(value: int | None) -> timedelta:
    return timedelta(milliseconds=value or 0)


class StoreBase:
    """The engine, and helpers every part of the repository uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    async def _autocommit(self, sql: Any, params: dict[str, Any]) -> Any:
        """One statement, atomic on its own: no BEGIN/COMMIT round trips around it."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await conn.execute(sql, params)  # buffered: usable after the close

    async def _with_steps(self, conn: AsyncConnection, record: ExecutionRecord) -> ExecutionRecord:
        record.steps = await self._load_steps(conn, record.id)
        return record

    async def _load_steps(self, conn: AsyncConnection, execution_id: UUID) -> list[StepState]:
        rows = (
            await conn.execute(
                select(S)
                .where(S.c.execution_id == execution_id)
                .order_by(S.c.started_at.asc().nulls_last(), S.c.step_key)
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

    async def _insert_events(
        self,
        conn: AsyncConnection,
        execution_id: UUID,
        last_seq: int,
        events: Sequence[tuple[str, dict[str, Any]]],
        now: datetime,
        times: Sequence[datetime] = (),
    ) -> list[EventRecord]:
        stored = [
            EventRecord(
                execution_id, last_seq + i, kind, data, times[i - 1] if i <= len(times) else now
            )
            for i, (kind, data) in enumerate(events, start=1)
        ]
        if stored:
            await conn.execute(
                insert(V),
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
        return stored


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
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        namespace=row.get("namespace") or "default",
    )


def workflow_record(row: RowMapping) -> WorkflowRecord:
    return WorkflowRecord(
        row["id"], row["name"], row["version"], row["definition"], row["created_at"]
    )
