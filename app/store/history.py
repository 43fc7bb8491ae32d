"""Execution history for observability: sampled gauges, the measured duration of each node,
retention (deleting old runs with their steps and events, in batches) and export."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select

from app.store.base import E, S, StoreBase, V

ENDED = ("completed", "failed", "cancelled")
LIVE = ("pending", "running", "paused", "waiting")


class HistoryStore(StoreBase):
    async def live_counts(self) -> dict[tuple[str, str], int]:
        """Executions not yet ended, by status and mode (the status index answers it)."""
        query = (
            select(E.c.status, E.c.execution_mode, func.count())
            .where(E.c.status.in_(LIVE))
            .group_by(E.c.status, E.c.execution_mode)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(status, mode): int(n) for status, mode, n in rows}

    async def oldest_pending(self) -> datetime | None:
        query = select(func.min(func.coalesce(E.c.enqueued_at, E.c.created_at))).where(
            E.c.status == "pending", E.c.control_action.is_(None)
        )
        async with self.engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
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
            select(E.c.id)
            .where(
                E.c.workflow_name == name,
                E.c.workflow_version == version,
                E.c.status == "completed",
            )
            .order_by(E.c.created_at.desc())
            .limit(runs)
            .subquery()
        )
        query = select(S.c.node_id, S.c.started_at, S.c.completed_at).where(
            S.c.execution_id.in_(select(last.c.id)),
            S.c.status == "completed",
            S.c.item_index.is_(None),
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
            select(E.c.id)
            .where(E.c.status.in_(ENDED), E.c.created_at < cutoff)
            .order_by(E.c.created_at)
            .limit(batch)
        )
        async with self.engine.begin() as conn:
            ids = list((await conn.execute(doomed)).scalars())
            if not ids:
                return 0
            # The status is checked again: a retry racing us keeps its execution.
            gone = delete(E).where(E.c.id.in_(ids), E.c.status.in_(ENDED)).returning(E.c.id)
            ids = list((await conn.execute(gone)).scalars())
            if ids:
                await conn.execute(delete(V).where(V.c.execution_id.in_(ids)))
                await conn.execute(delete(S).where(S.c.execution_id.in_(ids)))
        return len(ids)

    async def all_events(self, execution_id: UUID) -> list[dict[str, Any]]:
        query = select(V).where(V.c.execution_id == execution_id).order_by(V.c.seq)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {"seq": r["seq"], "type": r["type"], "at": r["created_at"], "data": r["data"]}
            for r in rows
        ]
