"""Creating executions: one at a time through a group commit, or many in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.state import utcnow
from app.engine.status import Status
from app.store import pg_batch
from app.store.base import StoreBase, execution_record, ms
from app.store.batching import GroupCommit
from app.store.records import ExecutionRecord, NewExecution, numbered_events
from app.store.tables import workflow_executions

# One creation: the new row and its first events.
Creation = tuple[NewExecution, Sequence[tuple[str, dict[str, Any]]]]
Created = tuple[ExecutionRecord, bool]

# Rows one group-committed statement takes at most (a bulk request is written as it comes).
GROUP_MAX_ROWS = 200


class CreationStore(StoreBase):
    """Inserts executions with their first events; an idempotency key already in use gives
    back the execution that holds it (`created` False)."""

    @cached_property
    def _creations(self) -> GroupCommit[Creation, Created]:
        return GroupCommit(self.create_executions, max_rows=GROUP_MAX_ROWS)

    async def create_execution(
        self, new: NewExecution, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> Created:
        """Insert an execution and its first events, sharing the commit with the creations
        that arrive meanwhile (see app/store/batching.py)."""
        return await self._creations.submit((new, events))

    async def create_executions(self, items: Sequence[Creation]) -> list[Created | Exception]:
        """Insert many executions in one statement and one commit; one result per item."""
        now = utcnow()
        values = [creation_values(new, len(events), now) for new, events in items]
        if self.dialect == "postgresql":
            inserted = await self._insert_pg(items, values, now)
        else:
            async with self._write() as conn:
                inserted = await self._insert_sqlite(conn, items, values, now)
        results: list[Created | Exception] = []
        for (new, _), row in zip(items, values, strict=True):
            if new.id in inserted:
                results.append((created_record(row), True))
            else:
                results.append(await self._existing(new))
        return results

    async def get_by_idempotency_keys(self, keys: Sequence[str]) -> dict[str, ExecutionRecord]:
        """The executions holding these idempotency keys (without their steps), by key."""
        if not keys:
            return {}
        query = select(workflow_executions).where(
            workflow_executions.c.idempotency_key.in_(sorted(set(keys)))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {row["idempotency_key"]: execution_record(row) for row in rows}

    async def _insert_pg(
        self, items: Sequence[Creation], values: list[dict[str, Any]], now: datetime
    ) -> set[UUID]:
        columns = tuple(values[0])
        rows = [
            {
                **{c: pg_batch.json_value(v) for c, v in row.items()},
                "events": pg_batch.event_rows(events, (), now),
                "outbox": self.outbox.candidates([kind for kind, _ in events]) or None,
            }
            for (_, events), row in zip(items, values, strict=True)
        ]
        outbox = any(row["outbox"] for row in rows)
        sql = pg_batch.create_many_sql(columns, outbox)
        result = await self._batched(sql, {"rows": pg_batch.rows_param(rows)})
        return {row.id for row in result}

    async def _insert_sqlite(
        self,
        conn: AsyncConnection,
        items: Sequence[Creation],
        values: list[dict[str, Any]],
        now: datetime,
    ) -> set[UUID]:
        inserted: set[UUID] = set()
        plain = [row for row in values if not _may_collide(row)]
        if plain:  # no key and no schedule slot, no conflict: one executemany
            await conn.execute(insert(workflow_executions), plain)
            inserted.update(row["id"] for row in plain)
        for row in values:
            if not _may_collide(row):
                continue
            stmt = sqlite.insert(workflow_executions).values(row).on_conflict_do_nothing()
            if (await conn.execute(stmt)).rowcount:
                inserted.add(row["id"])
        stored = [
            event
            for new, events in items
            if new.id in inserted
            for event in numbered_events(new.id, len(events), events, now)
        ]
        await self._insert_events(conn, stored)
        return inserted

    async def _existing(self, new: NewExecution) -> Created | Exception:
        """The execution that holds this creation's idempotency key or schedule slot (it was
        not inserted)."""
        if new.schedule_id is not None and new.schedule_slot is not None:
            query = select(workflow_executions).where(
                workflow_executions.c.schedule_id == new.schedule_id,
                workflow_executions.c.schedule_slot == new.schedule_slot,
            )
            async with self.engine.connect() as conn:
                fired = (await conn.execute(query)).mappings().first()
                if fired is not None:
                    return await self._with_steps(conn, execution_record(fired)), False
        if new.idempotency_key is not None:
            async with self.engine.connect() as conn:
                found = (
                    (
                        await conn.execute(
                            select(workflow_executions).where(
                                workflow_executions.c.idempotency_key == new.idempotency_key
                            )
                        )
                    )
                    .mappings()
                    .first()
                )
                if found is not None:
                    return await self._with_steps(conn, execution_record(found)), False
        return IntegrityError("INSERT workflow_executions", None, Exception("not inserted"))


def _may_collide(row: dict[str, Any]) -> bool:
    """Whether a row's insert may hit a unique key (an idempotency key, a schedule slot)."""
    return row["idempotency_key"] is not None or row["schedule_id"] is not None


def creation_values(new: NewExecution, n_events: int, now: datetime) -> dict[str, Any]:
    """The row of a new execution; every row has the same columns (one statement)."""
    running = new.status == Status.RUNNING
    parent = new.parent
    return {
        "id": new.id,
        "workflow_id": new.workflow_id,
        "workflow_name": new.workflow_name,
        "workflow_version": new.workflow_version,
        "status": new.status,
        "execution_mode": new.execution_mode,
        "requested_mode": new.requested_mode,
        "created_at": now,
        "updated_at": now,
        "started_at": now if running else None,
        "input": new.input,
        "definition": new.definition,
        "complexity": new.complexity,
        "priority": new.priority,
        "tags": new.tags,
        "metadata": new.metadata,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
        "timeout_ms": new.timeout_ms,
        "progress_total": new.progress_total,
        "lease_owner": new.lease_owner,
        "lease_expires_at": now + ms(new.lease_ms) if new.lease_owner else None,
        "last_seq": n_events,
        "trace_context": new.trace_context,
        "namespace": new.namespace,
        "schedule_id": new.schedule_id,
        "schedule_slot": new.schedule_slot,
        "flow": new.flow,
        "concurrency_key": (new.flow or {}).get("concurrency", {}).get("key"),
        "parent_execution_id": parent.execution_id if parent else None,
        "parent_step_key": parent.step_key if parent else None,
        "parent_attempt": parent.attempt if parent else None,
        "child_depth": parent.depth if parent else 0,
    }


def created_record(values: dict[str, Any]) -> ExecutionRecord:
    return execution_record(
        {
            **values,
            "result": None,
            "error": None,
            "completed_at": None,
            "attempt": 1,
            "elapsed_ms": 0,
            "control_action": None,
            "wake_at": None,
            "progress_done": 0,
        }
    )
