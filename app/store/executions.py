"""Creating, reading and listing executions."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import String, and_, exists, func, literal, or_, select, text

from app.engine.status import TERMINAL, Status
from app.errors import ExecutionNotFound, RequestInvalid
from app.store.base import StoreBase, execution_record
from app.store.records import (
    EventRecord,
    ExecutionFilter,
    ExecutionRecord,
)
from app.store.tables import execution_events, workflow_executions


class ExecutionStore(StoreBase):
    """Executions as the API sees them."""

    async def get_by_schedule_slot(
        self, schedule_id: UUID, slot: datetime
    ) -> ExecutionRecord | None:
        """The execution a schedule fired for this slot (one per slot: a unique pair)."""
        query = select(workflow_executions).where(
            workflow_executions.c.schedule_id == schedule_id,
            workflow_executions.c.schedule_slot == slot,
        )
        async with self.engine.connect() as conn:
            found = (await conn.execute(query)).mappings().first()
        return execution_record(found) if found else None

    async def get_by_idempotency_key(self, key: str) -> ExecutionRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(workflow_executions).where(workflow_executions.c.idempotency_key == key)
                )
            ).mappings()
            found = row.first()
            return await self._with_steps(conn, execution_record(found)) if found else None

    async def get_execution(self, execution_id: UUID, *, steps: bool = True) -> ExecutionRecord:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(workflow_executions).where(workflow_executions.c.id == execution_id)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise ExecutionNotFound(f"no execution with id {execution_id}")
            record = execution_record(row)
            return await self._with_steps(conn, record) if steps else record

    async def get_status(self, execution_id: UUID) -> str:
        """The status alone (a stream's 404 check): not the row's JSON columns."""
        async with self.engine.connect() as conn:
            status = await conn.scalar(
                select(workflow_executions.c.status).where(workflow_executions.c.id == execution_id)
            )
        if status is None:
            raise ExecutionNotFound(f"no execution with id {execution_id}")
        return str(status)

    async def ended_by(self, execution_id: UUID, seq: int) -> bool:
        """True when the execution is terminal and no event of it is newer than `seq`
        (a stream resumed there has nothing left to send); 404 for an unknown id."""
        query = select(workflow_executions.c.status, workflow_executions.c.last_seq).where(
            workflow_executions.c.id == execution_id
        )
        rows = await self._read_rows(query)
        if not rows:
            raise ExecutionNotFound(f"no execution with id {execution_id}")
        return rows[0]["status"] in TERMINAL and rows[0]["last_seq"] <= seq

    async def list_executions(
        self, flt: ExecutionFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Newest first; keyset pagination on (created_at, id)."""
        query = (
            select(workflow_executions)
            .order_by(workflow_executions.c.created_at.desc(), workflow_executions.c.id.desc())
            .limit(limit + 1)
        )
        for clause in self._filters(flt):
            query = query.where(clause)
        if cursor:
            at, last_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    workflow_executions.c.created_at < at,
                    and_(
                        workflow_executions.c.created_at == at, workflow_executions.c.id < last_id
                    ),
                )
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        records = [execution_record(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = _encode_cursor(records[-1]) if more and records else None
        return records, next_cursor

    async def completed_per_bucket(self, since: datetime, bucket_s: int) -> dict[int, int]:
        """Executions completed since `since`, counted per `bucket_s`-second bucket (by index)."""
        query = select(workflow_executions.c.completed_at).where(
            workflow_executions.c.status == Status.COMPLETED,
            workflow_executions.c.completed_at >= since,
        )
        counts: dict[int, int] = {}
        async with self.engine.connect() as conn:
            for (at,) in await conn.execute(query):
                if at.tzinfo is None:
                    at = at.replace(tzinfo=since.tzinfo)
                bucket = int((at - since).total_seconds() // bucket_s)
                counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    async def events_of_types(
        self, execution_id: UUID, types: Sequence[str], limit: int = 500
    ) -> list[EventRecord]:
        """Some kinds of an execution's events, oldest first (the control history)."""
        query = (
            select(execution_events)
            .where(
                execution_events.c.execution_id == execution_id, execution_events.c.type.in_(types)
            )
            .order_by(execution_events.c.seq)
            .limit(limit)
        )
        return await self._read_events(query)

    def _filters(self, flt: ExecutionFilter) -> Iterable[Any]:
        if flt.namespace:
            yield workflow_executions.c.namespace == flt.namespace
        if flt.status:
            yield workflow_executions.c.status.in_(flt.status)
        if flt.workflow:
            yield or_(
                workflow_executions.c.workflow_name == flt.workflow,
                workflow_executions.c.workflow_id == flt.workflow,
            )
        if flt.mode:
            yield workflow_executions.c.execution_mode == flt.mode
        if flt.created_after:
            yield workflow_executions.c.created_at >= flt.created_after
        if flt.created_before:
            yield workflow_executions.c.created_at < flt.created_before
        if flt.text:
            like = flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            # Postgres shows a uuid with dashes; SQLite stores its 32 hex digits.
            prefix = like.lower() if self.dialect == "postgresql" else like.lower().replace("-", "")
            yield or_(
                func.cast(workflow_executions.c.id, String).like(f"{prefix}%", escape="\\"),
                workflow_executions.c.idempotency_key.ilike(f"%{like}%", escape="\\"),
            )
        if flt.tag:
            if self.dialect == "postgresql":
                yield workflow_executions.c.tags.op("@>")(func.jsonb_build_array(flt.tag))
            else:
                yield exists(
                    select(literal(1))
                    .select_from(func.json_each(workflow_executions.c.tags).table_valued("value"))
                    .where(text("value = :tag").bindparams(tag=flt.tag))
                )


def _encode_cursor(record: ExecutionRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, ident = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(at), UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestInvalid("invalid cursor") from exc
