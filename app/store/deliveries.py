"""The delivery loop's SQL: claim due deliveries in order, record what became of them.

Order per (subscription, execution): only a queue's head (its lowest pending seq) can be
claimed, and a claim leases the whole queue, so seq n+1 never goes out before n is
delivered or dead. Heads are taken with FOR UPDATE SKIP LOCKED (Postgres; SQLite's writer
lock serialises claims), and a lease that expires (a dead worker) frees the queue again."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, exists, or_, select, tuple_, update

from app.engine.state import utcnow
from app.events.wire import event_json
from app.store import pg_deliveries
from app.store.delivery_views import DeliveryRecord, DeliveryViews, Recorded, delivery_row
from app.store.outbox import DEAD, DELIVERED, PENDING
from app.store.records import EventRecord
from app.store.subscriptions import ACTIVE, FAILING
from app.store.tables import event_deliveries, execution_events, subscriptions

d = event_deliveries


class DeliveryStore(DeliveryViews):
    """The delivery loop's side: claims, records, leases."""

    async def claim(self, owner: str, queues: int, lease_ms: int) -> list[DeliveryRecord]:
        """Lease up to `queues` due queues; their pending deliveries in order, with events."""
        now = utcnow()
        if self.dialect == "postgresql":
            params = {
                "now": now,
                "owner": owner,
                "queues": queues,
                "expires": now + timedelta(milliseconds=lease_ms),
            }
            rows = (await self._autocommit(pg_deliveries.CLAIM, params)).mappings().all()
            return [delivery_row(r) for r in rows]
        earlier = d.alias("earlier")
        heads = (
            select(d.c.subscription_id, d.c.execution_id)
            .where(
                d.c.status == PENDING,
                d.c.next_attempt_at <= now,
                or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at < now),
                ~exists().where(
                    earlier.c.subscription_id == d.c.subscription_id,
                    earlier.c.execution_id == d.c.execution_id,
                    earlier.c.status == PENDING,
                    earlier.c.seq < d.c.seq,
                ),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(queues)
        )
        if self.dialect == "postgresql":
            heads = heads.with_for_update(skip_locked=True, of=d)
        async with self._write() as conn:
            pairs = [tuple(r) for r in (await conn.execute(heads)).all()]
            if not pairs:
                return []
            leased = (
                (
                    await conn.execute(
                        update(d)
                        .where(
                            tuple_(d.c.subscription_id, d.c.execution_id).in_(pairs),
                            d.c.status == PENDING,
                        )
                        .values(
                            lease_owner=owner,
                            lease_expires_at=now + timedelta(milliseconds=lease_ms),
                        )
                        .returning(*d.c)
                    )
                )
                .mappings()
                .all()
            )
            found = await self._with_events(conn, [delivery_row(r) for r in leased])
        found.sort(key=lambda x: (str(x.subscription_id), str(x.execution_id), x.seq))
        return found

    async def delivered_and_next(
        self, owner: str, batch: list[Recorded], lease_ms: int
    ) -> list[list[DeliveryRecord]]:
        """Record the deliveries of many queues as delivered and, for each queue with a
        `last`, lease what its execution added after it meanwhile (with the events), in
        one go; the leased rows of each item, in seq order."""
        now = utcnow()
        expires = now + timedelta(milliseconds=lease_ms)
        found: list[DeliveryRecord]
        if self.dialect == "postgresql":
            params = {
                "now": now,
                "ids": [i for r in batch for i in r.ids],
                "statuses": [r.status for r in batch for _ in r.ids],
                "subs": [r.last.subscription_id for r in batch if r.last],
                "executions": [r.last.execution_id for r in batch if r.last],
                "afters": [r.last.seq for r in batch if r.last],
                "owner": owner,
                "expires": expires,
            }
            rows = (
                (await self._autocommit(pg_deliveries.DELIVERED_AND_NEXT, params)).mappings().all()
            )
            found = [delivery_row(r) for r in rows]
        else:
            found = []
            async with self._write() as conn:  # one transaction: no claim sees the gap
                for r in batch:
                    await self._delivered(conn, r.ids, r.status, now)
                for r in batch:
                    if r.last is not None:
                        found += await self._lease_after(conn, owner, r.last, now, expires)
                found = await self._with_events(conn, found)
        by_queue: dict[tuple[UUID, UUID], list[DeliveryRecord]] = {}
        for x in sorted(found, key=lambda x: x.seq):
            by_queue.setdefault((x.subscription_id, x.execution_id), []).append(x)
        return [
            by_queue.get((r.last.subscription_id, r.last.execution_id), []) if r.last else []
            for r in batch
        ]

    async def _lease_after(
        self, conn: Any, owner: str, last: DeliveryRecord, now: datetime, expires: datetime
    ) -> list[DeliveryRecord]:
        leased = await conn.execute(
            update(d)
            .where(
                d.c.subscription_id == last.subscription_id,
                d.c.execution_id == last.execution_id,
                d.c.seq > last.seq,
                d.c.status == PENDING,
                d.c.next_attempt_at <= now,
                # Not another task's (of this worker, too): it took them in order when
                # this one had recorded all of its own.
                or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at < now),
            )
            .values(lease_owner=owner, lease_expires_at=expires)
            .returning(*d.c)
        )
        return [delivery_row(r) for r in leased.mappings().all()]

    async def _with_events(self, conn: Any, found: list[DeliveryRecord]) -> list[DeliveryRecord]:
        """One record per event of each of `found`, with its event (as the Postgres claims
        read them); a delivery whose events are gone, once with none."""
        keys = list({(x.execution_id, seq) for x in found for seq in range(x.seq, x.last_seq + 1)})
        if not keys:
            return []
        rows = await conn.execute(
            select(execution_events).where(
                tuple_(execution_events.c.execution_id, execution_events.c.seq).in_(keys)
            )
        )
        events = {
            (r["execution_id"], r["seq"]): EventRecord(
                r["execution_id"], r["seq"], r["type"], r["data"], r["created_at"]
            )
            for r in rows.mappings()
        }
        out: list[DeliveryRecord] = []
        for x in found:
            each = [
                replace(x, seq=seq, event_type=ev.type, body=event_json(ev).encode())
                for seq in range(x.seq, x.last_seq + 1)
                if (ev := events.get((x.execution_id, seq))) is not None
            ]
            out += each or [x]
        return out

    async def renew(self, owner: str, ids: list[int], lease_ms: int) -> int:
        """Extend this owner's lease on `ids`; how many it still held."""
        async with self._write() as conn:
            done = await conn.execute(
                update(d)
                .where(d.c.id.in_(ids), d.c.lease_owner == owner, d.c.status == PENDING)
                .values(lease_expires_at=utcnow() + timedelta(milliseconds=lease_ms))
            )
        return int(done.rowcount or 0)

    async def delivered(self, ids: list[int], status_code: int | None) -> None:
        if not ids:
            return
        async with self._write() as conn:
            await self._delivered(conn, ids, status_code, utcnow())

    async def _delivered(
        self, conn: Any, ids: list[int], status_code: int | None, now: datetime
    ) -> None:
        if not ids:
            return
        await conn.execute(
            update(d)
            .where(d.c.id.in_(ids), d.c.status == PENDING)
            .values(
                status=DELIVERED,
                delivered_at=now,
                attempts=d.c.attempts + 1,
                last_status=status_code,
                last_error=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )

    async def failed(
        self,
        owner: str,
        delivery: DeliveryRecord,
        status_code: int | None,
        error: str,
        retry_in_ms: int | None,
    ) -> None:
        """Record a failed attempt: due again in `retry_in_ms`, or dead (None: its
        subscription is `failing` in the same transaction). The rest of its queue is
        released (it waits behind this one)."""
        now = utcnow()
        values: dict[str, Any] = {
            "attempts": d.c.attempts + 1,
            "last_status": status_code,
            "last_error": error[:2000],
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if retry_in_ms is None:
            values["status"] = DEAD
        else:
            values["next_attempt_at"] = now + timedelta(milliseconds=retry_in_ms)
        async with self._write() as conn:
            await conn.execute(
                update(d).where(d.c.id == delivery.id, d.c.status == PENDING).values(**values)
            )
            await self._release(conn, owner, delivery.subscription_id, delivery.execution_id)
            if retry_in_ms is None:
                await conn.execute(
                    update(subscriptions)
                    .where(
                        subscriptions.c.id == delivery.subscription_id,
                        subscriptions.c.status == ACTIVE,
                    )
                    .values(status=FAILING, updated_at=now)
                )

    async def release(self, owner: str, subscription_id: UUID, execution_id: UUID) -> None:
        async with self._write() as conn:
            await self._release(conn, owner, subscription_id, execution_id)

    async def _release(
        self, conn: Any, owner: str, subscription_id: UUID, execution_id: UUID
    ) -> None:
        await conn.execute(
            update(d)
            .where(
                d.c.subscription_id == subscription_id,
                d.c.execution_id == execution_id,
                d.c.lease_owner == owner,
                d.c.status == PENDING,
            )
            .values(lease_owner=None, lease_expires_at=None)
        )

    async def drop(self, ids: list[int]) -> None:
        """Deliveries that cannot be made any more (their subscription or event is gone)."""
        async with self._write() as conn:
            await conn.execute(delete(d).where(d.c.id.in_(ids)))

    async def release_expired(self) -> int:
        """Free the queues of workers whose lease expired (they died mid-delivery)."""
        async with self._write() as conn:
            done = await conn.execute(
                update(d)
                .where(d.c.status == PENDING, d.c.lease_expires_at < utcnow())
                .values(lease_owner=None, lease_expires_at=None)
            )
        return int(done.rowcount or 0)


__all__ = ["DeliveryRecord", "DeliveryStore", "Recorded"]
