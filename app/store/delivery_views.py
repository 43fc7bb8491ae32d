"""What the API and the dashboard read of the outbox (a subscription's deliveries, their
counts, the latest failures), redelivery by hand, and the reconciler's pruning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import RowMapping

from app.engine.state import utcnow
from app.events.wire import event_json_of
from app.store.base import StoreBase
from app.store.outbox import DEAD, DELIVERED, PENDING
from app.store.tables import event_deliveries

d = event_deliveries


@dataclass(slots=True)
class DeliveryRecord:
    """A delivery: the events `seq` .. `last_seq` of one commit. As the delivery loop
    claims it, one record per event: `seq` and `event_type` that event's, `body` its JSON
    as it goes out (None: the event is gone, its execution deleted)."""

    id: int
    subscription_id: UUID
    execution_id: UUID
    seq: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    last_seq: int = 0  # the delivery's last event (its first is `seq`, as listed)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """One queue's deliveries made (`ids`, the last answer's `status`) and, when the
    queue goes on, its `last` delivery: what came after it is leased next."""

    ids: list[int]
    status: int | None
    last: DeliveryRecord | None = None


def delivery_row(row: RowMapping) -> DeliveryRecord:
    """A delivery as stored; with the columns of an event (the claims' `ev_*`), the record
    of that event of it."""
    found = DeliveryRecord(
        id=row["id"],
        subscription_id=row["subscription_id"],
        execution_id=row["execution_id"],
        seq=row.get("ev_seq") or row["seq"],
        event_type=row["event_type"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        last_seq=row["last_seq"] or row["seq"],
    )
    if row.get("ev_type") is not None:  # the one-statement claims read the event too
        found.event_type = row["ev_type"]
        found.body = event_json_of(
            found.execution_id, found.seq, found.event_type, row["ev_created_at"], row["ev_json"]
        ).encode()
    return found


class DeliveryViews(StoreBase):
    async def prune(self, older_than: datetime, batch: int = 1_000) -> int:
        """Delete up to `batch` delivered or dead deliveries made before `older_than`
        (the oldest first: a walk of the primary key that stops at `batch`)."""
        old = (
            select(d.c.id)
            .where(d.c.status.in_([DELIVERED, DEAD]), d.c.next_attempt_at < older_than)
            .order_by(d.c.id)
            .limit(batch)
            .scalar_subquery()
        )
        async with self._write() as conn:
            done = await conn.execute(delete(d).where(d.c.id.in_(old)))
        return int(done.rowcount or 0)

    async def listed(
        self,
        subscription_id: UUID,
        *,
        status: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> tuple[list[DeliveryRecord], int | None]:
        """A subscription's deliveries, newest first, and the cursor of the next page."""
        query = select(d).where(d.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(d.c.status == status)
        if before_id is not None:
            query = query.where(d.c.id < before_id)
        async with self.engine.connect() as conn:
            rows = (
                (await conn.execute(query.order_by(d.c.id.desc()).limit(limit + 1)))
                .mappings()
                .all()
            )
        items = [delivery_row(r) for r in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def redeliver(self, subscription_id: UUID, delivery_id: int) -> DeliveryRecord | None:
        """Send it again now, whatever became of it (a fresh count of attempts)."""
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        update(d)
                        .where(d.c.id == delivery_id, d.c.subscription_id == subscription_id)
                        .values(
                            status=PENDING,
                            attempts=0,
                            next_attempt_at=utcnow(),
                            lease_owner=None,
                            lease_expires_at=None,
                            delivered_at=None,
                        )
                        .returning(*d.c)
                    )
                )
                .mappings()
                .first()
            )
        return delivery_row(row) if row is not None else None

    async def counts(self, subscription_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
        """Events per subscription and status of their deliveries."""
        if not subscription_ids:
            return {}
        events = func.sum(func.coalesce(d.c.last_seq, d.c.seq) - d.c.seq + 1)
        query = (
            select(d.c.subscription_id, d.c.status, events)
            .where(d.c.subscription_id.in_(subscription_ids))
            .group_by(d.c.subscription_id, d.c.status)
        )
        out: dict[UUID, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            for sub, status, n in (await conn.execute(query)).all():
                out.setdefault(sub, {})[status] = int(n)
        return out

    async def failures(self, namespace_subs: list[UUID], limit: int = 50) -> list[DeliveryRecord]:
        """The latest deliveries that failed at least once (dead, or pending a retry)."""
        if not namespace_subs:
            return []
        query = (
            select(d)
            .where(
                d.c.subscription_id.in_(namespace_subs),
                or_(d.c.status == DEAD, and_(d.c.status == PENDING, d.c.attempts > 0)),
            )
            .order_by(d.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [delivery_row(r) for r in rows]
