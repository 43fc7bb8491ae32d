"""Execution history for observability: sampled gauges, the measured duration of each node,
retention (deleting old runs with their steps and events, in batches) and export."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.base import StoreBase
from app.store.tables import execution_events, execution_steps, workflow_executions

ENDED = ("completed", "failed", "cancelled")
LIVE = ("pending", "running", "paused", "waiting")


class HistoryStore(StoreBase):
    @asynccontextmanager
    async def _live_reads(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose reads of the live runs go through the status index: with seq
        scans off for the transaction on Postgres. Statistics taken during a burst say a
        third of the table is live long after it is not, and the planner then read the
        whole history for the gauges (a seq scan of 34,000 rows for 1,940 live ones in W4,
        every 5 s in every process, growing with the history)."""
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SET LOCAL enable_seqscan = off"))
                await conn.execute(text("SET LOCAL jit = off"))  # no penalty's compile
            yield conn

    @staticmethod
    def live_counts_query() -> Select[tuple[Any, Any, int]]:
        return (
            select(workflow_executions.c.status, workflow_executions.c.execution_mode, func.count())
            .where(workflow_executions.c.status.in_(LIVE))
            .group_by(workflow_executions.c.status, workflow_executions.c.execution_mode)
        )

    async def live_counts(self) -> dict[tuple[str, str], int]:
        """Executions not yet ended, by status and mode (the status index answers it)."""
        async with self._live_reads() as conn:
            rows = (await conn.execute(self.live_counts_query())).all()
        return {(status, mode): int(n) for status, mode, n in rows}

    @staticmethod
    def oldest_pending_query() -> Select[tuple[Any]]:
        pending = (
            select(workflow_executions.c.created_at)
            .where(
                workflow_executions.c.status == "pending",
                workflow_executions.c.control_action.is_(None),
            )
            .offset(0)
            .subquery()
        )
        return select(func.min(pending.c.created_at))

    async def oldest_pending(self) -> datetime | None:
        """The pending rows are read through the status index (OFFSET 0 keeps them apart):
        a bare min() was planned as a walk of the creation-time index from the oldest run,
        through every run that ended before the oldest pending one (66,000 rows, 135 ms,
        after a few minutes of W4; every sample of every process)."""
        async with self._live_reads() as conn:
            value: datetime | str | None = (
                await conn.execute(self.oldest_pending_query())
            ).scalar()
        if isinstance(value, str):  # SQLite's min() over text
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            from datetime import UTC

            value = value.replace(tzinfo=UTC)
        return value

    async def node_medians(self, name: str, version: str, runs: int) -> dict[str, float]:
        """Median duration (ms) of each node over the last `runs` completed executions of a
        registered workflow version (foreach items excluded: the node's own step counts)."""
        last = (
            select(workflow_executions.c.id)
            .where(
                workflow_executions.c.workflow_name == name,
                workflow_executions.c.workflow_version == version,
                workflow_executions.c.status == "completed",
            )
            .order_by(workflow_executions.c.created_at.desc())
            .limit(runs)
            .subquery()
        )
        query = select(
            execution_steps.c.node_id, execution_steps.c.started_at, execution_steps.c.completed_at
        ).where(
            execution_steps.c.execution_id.in_(select(last.c.id)),
            execution_steps.c.status == "completed",
            execution_steps.c.item_index.is_(None),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        durations: dict[str, list[float]] = {}
        for node_id, started, completed in rows:
            if started is not None and completed is not None:
                ms = (completed - started).total_seconds() * 1000
                durations.setdefault(node_id, []).append(ms)
        return {node: statistics.median(values) for node, values in durations.items()}

    async def delete_ended_before(self, cutoff: datetime, batch: int) -> int:
        """Delete up to `batch` ended executions created before `cutoff`, with their steps
        and events, in one transaction; returns how many (call again until 0)."""
        doomed = (
            select(workflow_executions.c.id)
            .where(
                workflow_executions.c.status.in_(ENDED), workflow_executions.c.created_at < cutoff
            )
            .order_by(workflow_executions.c.created_at)
            .limit(batch)
        )
        async with self._write() as conn:
            ids = list((await conn.execute(doomed)).scalars())
            if not ids:
                return 0
            # The status is checked again: a retry racing us keeps its execution.
            gone = (
                delete(workflow_executions)
                .where(workflow_executions.c.id.in_(ids), workflow_executions.c.status.in_(ENDED))
                .returning(workflow_executions.c.id)
            )
            ids = list((await conn.execute(gone)).scalars())
            if ids:
                await conn.execute(
                    delete(execution_events).where(execution_events.c.execution_id.in_(ids))
                )
                await conn.execute(
                    delete(execution_steps).where(execution_steps.c.execution_id.in_(ids))
                )
        return len(ids)

    async def all_events(self, execution_id: UUID) -> list[dict[str, Any]]:
        query = (
            select(execution_events)
            .where(execution_events.c.execution_id == execution_id)
            .order_by(execution_events.c.seq)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {"seq": r["seq"], "type": r["type"], "at": r["created_at"], "data": r["data"]}
            for r in rows
        ]
