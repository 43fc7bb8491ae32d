"""Which namespace an execution belongs to (the API's 404 for other namespaces)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.base import E


async def namespace_of(engine: AsyncEngine, execution_id: UUID) -> str | None:
    async with engine.connect() as conn:
        found = await conn.scalar(select(E.c.namespace).where(E.c.id == execution_id))
    return str(found) if found is not None else None
