"""Which namespace an execution belongs to (the API's 404 for other namespaces)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.tables import workflow_executions


async def namespace_of(engine: AsyncEngine, execution_id: UUID) -> str | None:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(workflow_executions.c.namespace).where(workflow_executions.c.id == execution_id)
        )
    return str(found) if found is not None else None
