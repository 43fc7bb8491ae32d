"""The queued track commits the execution row before anything can see the job."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.events.bus import InProcessBus
from app.execution.strategies import QueuedExecutionStrategy
from app.nodes.registry import default_registry
from app.store.repository import Repository
from app.workflows.graph import compile_workflow
from tests.support.executions import new_queued


class VisibilityCheckingQueue:
    """A queue adapter that, at enqueue time, looks for the row from another connection."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.seen: list[tuple[uuid.UUID, str | None]] = []

    async def enqueue(
        self, execution_id: uuid.UUID, *, priority: int = 0, defer_until: datetime | None = None
    ) -> None:
        other = create_async_engine(self.db_url)
        try:
            async with other.connect() as conn:
                status = (
                    await conn.execute(
                        text("SELECT status FROM workflow_executions WHERE id = :id"),
                        {"id": execution_id},
                    )
                ).scalar()
        finally:
            await other.dispose()
        self.seen.append((execution_id, status))

    def ask_enqueue(self, jobs: Sequence[tuple[uuid.UUID, int]]) -> Awaitable[None]:
        return self.enqueue_many(jobs)

    async def enqueue_many(self, jobs: Sequence[tuple[uuid.UUID, int]]) -> None:
        for execution_id, priority in jobs:
            await self.enqueue(execution_id, priority=priority)

    async def live(self, execution_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return set()

    async def lead(self, name: str, ttl_ms: int) -> bool:
        return True

    async def position(self, execution_id: uuid.UUID) -> int | None:
        return None

    async def close(self) -> None:
        return None


async def test_enqueue_happens_after_commit(engine: AsyncEngine, db_url: str) -> None:
    queue = VisibilityCheckingQueue(db_url)
    strategy = QueuedExecutionStrategy(Repository(engine), InProcessBus(), queue)
    definition = {"nodes": [{"id": "a", "type": "noop"}]}
    compiled = compile_workflow(definition, default_registry(), max_nodes=10)
    new = new_queued(definition)
    started = await strategy.start(new, compiled)
    # Another connection already saw the committed, pending row when the job was enqueued.
    assert queue.seen == [(started.record.id, "pending")]
