"""Subscriptions of event sinks: their rows, and the list every process caches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from app.engine.state import utcnow
from app.store.base import StoreBase
from app.store.tables import event_deliveries, subscriptions

ACTIVE = "active"
FAILING = "failing"
DISABLED = "disabled"


@dataclass(slots=True)
class SubscriptionRecord:
    id: UUID
    namespace: str
    sink: str
    url: str | None
    stream: str | None
    events: list[str]
    workflow: str | None
    description: str | None
    secret: str | None  # as stored (a Fernet token when the vault is on)
    status: str
    created_at: datetime
    updated_at: datetime
    batch_size: int = 1  # events per POST / pipeline; > 1: a webhook's body is a JSON array


def _record(row: RowMapping) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row["id"],
        namespace=row["namespace"],
        sink=row["sink"],
        url=row["url"],
        stream=row["stream"],
        events=list(row["events"]),
        workflow=row["workflow"],
        description=row["description"],
        secret=row["secret"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        batch_size=row.get("batch_size") or 1,
    )


class SubscriptionStore(StoreBase):
    async def create(self, values: dict[str, Any]) -> SubscriptionRecord:
        now = utcnow()
        row = {**values, "status": ACTIVE, "created_at": now, "updated_at": now}
        async with self._write() as conn:
            await conn.execute(insert(subscriptions), [row])
        return _record(row)  # type: ignore[arg-type]

    async def get(self, subscription_id: UUID, namespace: str | None) -> SubscriptionRecord | None:
        """One subscription; another namespace's is None (as if it did not exist)."""
        query = select(subscriptions).where(subscriptions.c.id == subscription_id)
        if namespace is not None:
            query = query.where(subscriptions.c.namespace == namespace)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    async def listed(self, namespace: str | None, limit: int = 500) -> list[SubscriptionRecord]:
        query = select(subscriptions).order_by(subscriptions.c.created_at).limit(limit)
        if namespace is not None:
            query = query.where(subscriptions.c.namespace == namespace)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in rows]

    async def receiving(self) -> list[SubscriptionRecord]:
        """Every subscription that takes new events (what each process caches)."""
        query = select(subscriptions).where(subscriptions.c.status != DISABLED)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in rows]

    async def change(
        self, subscription_id: UUID, namespace: str | None, values: dict[str, Any]
    ) -> SubscriptionRecord | None:
        stmt = update(subscriptions).where(subscriptions.c.id == subscription_id)
        if namespace is not None:
            stmt = stmt.where(subscriptions.c.namespace == namespace)
        async with self._write() as conn:
            stmt = stmt.values(**values, updated_at=utcnow()).returning(subscriptions)
            row = (await conn.execute(stmt)).mappings().first()
        return _record(row) if row is not None else None

    async def mark(self, subscription_id: UUID, status: str) -> None:
        """`failing` after a dead delivery, `active` again after a success (never un-disables)."""
        async with self._write() as conn:
            await conn.execute(
                update(subscriptions)
                .where(
                    subscriptions.c.id == subscription_id,
                    subscriptions.c.status != DISABLED,
                    subscriptions.c.status != status,
                )
                .values(status=status, updated_at=utcnow())
            )

    async def remove(self, subscription_id: UUID, namespace: str | None) -> bool:
        """Delete it and its deliveries, in one transaction."""
        stmt = delete(subscriptions).where(subscriptions.c.id == subscription_id)
        if namespace is not None:
            stmt = stmt.where(subscriptions.c.namespace == namespace)
        async with self._write() as conn:
            done = await conn.execute(stmt)
            if not done.rowcount:
                return False
            await conn.execute(
                delete(event_deliveries).where(
                    event_deliveries.c.subscription_id == subscription_id
                )
            )
        return True

    async def version(self) -> tuple[int, datetime | None]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(func.count(), func.max(subscriptions.c.updated_at)).select_from(
                        subscriptions
                    )
                )
            ).first()
        return (int(row[0]), row[1]) if row is not None else (0, None)
