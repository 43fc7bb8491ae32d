"""The flow-control gate at the claim: concurrency keys, a namespace-wide limit, start rates.

An execution whose `flow` column is set is claimed only through `claim_gated`: one
transaction that serializes the claims of its key (an advisory lock on Postgres; SQLite has
one writer at a time), counts the executions of the key that are `running`, takes a token
from the key's bucket for a first start, and then claims. A run that may not start yet stays
`pending` with its reason on the row. Executions that are `waiting` or `paused` hold no slot;
a `running` one whose runner died still does, until a new runner takes it over (the
reconciler re-enqueues it, and a takeover needs no slot) and it comes to rest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.state import utcnow
from app.engine.status import Status
from app.store.base import ms
from app.store.records import EventRecord, ExecutionRecord
from app.store.runs import RunStore
from app.store.tables import flow_buckets, workflow_executions

_wx = workflow_executions.c
# Statuses that still compete for a slot (cancel_in_progress cancels the older ones).
_ACTIVE = (Status.PENDING, Status.RUNNING, Status.WAITING, Status.PAUSED)


@dataclass(slots=True)
class Refusal:
    """Why a gated execution may not start now, and what the caller should do about it."""

    reason: dict[str, Any]  # the row's `pendingReason`
    retry_at: datetime | None = None  # rate limited: when its token is due (enqueue then)
    cancel_self: bool = False  # cancel_newest: the newcomer is cancelled, not queued
    supersede: list[UUID] = field(default_factory=list)  # cancel_in_progress: cancel these


@dataclass(slots=True)
class Gated:
    """The outcome of a gated claim: claimed, refused, or not claimable (None, None)."""

    claimed: tuple[ExecutionRecord, EventRecord] | None = None
    refusal: Refusal | None = None
    supersede: list[UUID] = field(default_factory=list)


class FlowStore(RunStore):
    """The gated claim, and who waits for a slot that frees."""

    async def claim_gated(
        self, execution_id: UUID, owner: str, lease_ms: int, event: tuple[str, dict[str, Any]]
    ) -> Gated:
        """Claim an execution with flow control if its gates let it start (see module doc)."""
        if self.dialect == "sqlite":  # a row the fast claim passed over for another reason
            async with self.engine.connect() as conn:  # is told without the writer lock
                row = await self._claimable_row(conn, execution_id, utcnow())
            if row is None or row.flow is None:
                return Gated()
        async with self._write() as conn:
            row = await self._claimable_row(conn, execution_id, utcnow())
            if row is None or row.flow is None:
                return Gated()
            takeover = row.status == Status.RUNNING  # it keeps the slot its run holds
            supersede: list[UUID] = []
            if not takeover:
                await self._lock_keys(conn, row)
                supersede = await self._superseded(conn, row)
                refusal = await self._check_slots(conn, row)
                # One instant, taken after the counts, for the token and the start stamp: a
                # start is later than the releases its count saw, and starts are spaced
                # exactly as the bucket let them through.
                now = utcnow()
                if refusal is None and row.started_at is None:
                    refusal = await self._take_token(conn, row, now)
                if refusal is not None:
                    refusal.supersede = supersede
                    await self._refuse(conn, row, refusal, now)
                    return Gated(refusal=refusal, supersede=supersede)
            else:
                now = utcnow()
            claimed = await self._claim_in(conn, execution_id, owner, lease_ms, event, now, True)
            return Gated(claimed=claimed, supersede=supersede)

    async def _claimable_row(self, conn: AsyncConnection, execution_id: UUID, now: datetime) -> Any:
        query = select(
            _wx.id,
            _wx.status,
            _wx.namespace,
            _wx.workflow_name,
            _wx.created_at,
            _wx.started_at,
            _wx.wake_at,
            _wx.lease_expires_at,
            _wx.flow,
            _wx.concurrency_key,
            _wx.pending_reason,
        ).where(_wx.id == execution_id)
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        waiting_due = (
            row.status == Status.WAITING and row.wake_at is not None and row.wake_at <= now
        )
        expired = row.status == Status.RUNNING and (
            row.lease_expires_at is None or row.lease_expires_at < now
        )
        if row.status == Status.PENDING or waiting_due or expired:
            return row
        return None

    async def _lock_keys(self, conn: AsyncConnection, row: Any) -> None:
        """Serialize the claims of the row's keys, always in this order (no deadlock)."""
        concurrency = row.flow.get("concurrency")
        if concurrency is not None:
            await self._lock(
                conn, "concurrency", row.namespace, row.workflow_name, concurrency["key"]
            )
        if row.flow.get("namespaceLimit"):
            await self._lock(conn, "namespace", row.namespace)
        rate = row.flow.get("rateLimit")
        if rate is not None and row.started_at is None:
            await self._lock(conn, "rate", _bucket(row, rate))

    async def _lock(self, conn: AsyncConnection, *parts: str) -> None:
        """Serialize the claims of one key until this transaction ends (Postgres)."""
        if self.dialect != "postgresql":
            return  # SQLite: this transaction is the only writer (StoreBase._write)
        digest = hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).digest()
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": int.from_bytes(digest, "big", signed=True)},
        )

    async def _check_slots(self, conn: AsyncConnection, row: Any) -> Refusal | None:
        concurrency = row.flow.get("concurrency")
        if concurrency is not None:
            running = await self._count_running(
                conn,
                row.id,
                _wx.namespace == row.namespace,
                _wx.workflow_name == row.workflow_name,
                _wx.concurrency_key == concurrency["key"],
            )
            if running >= concurrency["limit"]:
                reason = {
                    "code": "concurrency_limit",
                    "key": concurrency["key"],
                    "limit": concurrency["limit"],
                    "running": running,
                }
                newest = concurrency["strategy"] == "cancel_newest" and row.started_at is None
                return Refusal(reason, cancel_self=newest)
        limit = row.flow.get("namespaceLimit")
        if limit:
            running = await self._count_running(conn, row.id, _wx.namespace == row.namespace)
            if running >= limit:
                reason = {
                    "code": "namespace_concurrency_limit",
                    "namespace": row.namespace,
                    "limit": limit,
                    "running": running,
                }
                return Refusal(reason)
        return None

    async def _count_running(self, conn: AsyncConnection, me: UUID, *where: Any) -> int:
        query = (
            select(func.count())
            .select_from(workflow_executions)
            .where(_wx.status == Status.RUNNING, _wx.id != me, *where)
        )
        return int((await conn.execute(query)).scalar_one())

    async def _superseded(self, conn: AsyncConnection, row: Any) -> list[UUID]:
        """cancel_in_progress, on a run's first claim: the older runs of its key beyond the
        `limit - 1` newest, which it supersedes (the caller cancels them)."""
        concurrency = row.flow.get("concurrency")
        if (
            concurrency is None
            or concurrency["strategy"] != "cancel_in_progress"
            or row.started_at is not None
        ):
            return []
        query = (
            select(_wx.id)
            .where(
                _wx.namespace == row.namespace,
                _wx.workflow_name == row.workflow_name,
                _wx.concurrency_key == concurrency["key"],
                _wx.status.in_(_ACTIVE),
                _wx.id != row.id,
                _wx.created_at <= row.created_at,
            )
            .order_by(_wx.created_at.desc(), _wx.id.desc())
            .offset(concurrency["limit"] - 1)
        )
        return [r.id for r in (await conn.execute(query)).all()]

    async def _take_token(self, conn: AsyncConnection, row: Any, now: datetime) -> Refusal | None:
        """A first start spends a token of its key's bucket (refilled at `perSecond` up to
        `burst`). With none left the run waits: it is retried when the next token is due,
        later by one token's time per run already waiting on the key, so they come back
        spread out rather than all at once."""
        rate = row.flow.get("rateLimit")
        if rate is None:
            return None
        bucket = _bucket(row, rate)
        per_second, burst = float(rate["perSecond"]), float(rate["burst"])
        stored = (
            await conn.execute(
                select(flow_buckets.c.tokens, flow_buckets.c.updated_at).where(
                    flow_buckets.c.bucket == bucket
                )
            )
        ).first()
        if stored is None:
            tokens = burst
        else:
            elapsed = max(0.0, (now - stored.updated_at).total_seconds())
            tokens = min(burst, stored.tokens + elapsed * per_second)
        granted = tokens >= 1
        left = tokens - 1 if granted else tokens
        if stored is None:
            await conn.execute(
                insert(flow_buckets).values(bucket=bucket, tokens=left, updated_at=now)
            )
        else:
            await conn.execute(
                update(flow_buckets)
                .where(flow_buckets.c.bucket == bucket)
                .values(tokens=left, updated_at=now)
            )
        if granted:
            return None
        ahead = await self._rate_waiting(conn, row, rate["key"])
        wait_s = (1 - tokens + ahead) / per_second
        due = now + ms(int(wait_s * 1000) + 1)
        reason = {
            "code": "rate_limited",
            "key": rate["key"],
            "perSecond": rate["perSecond"],
            "burst": rate["burst"],
            "retryAt": due.isoformat(),
        }
        return Refusal(reason, retry_at=due)

    async def _rate_waiting(self, conn: AsyncConnection, row: Any, key: str) -> int:
        """How many other runs of the key wait for a token now."""
        query = select(_wx.pending_reason).where(
            _wx.namespace == row.namespace,
            _wx.workflow_name == row.workflow_name,
            _wx.status == Status.PENDING,
            _wx.pending_reason.isnot(None),
            _wx.id != row.id,
        )
        reasons = (await conn.execute(query)).scalars()
        return sum(1 for r in reasons if r.get("code") == "rate_limited" and r.get("key") == key)

    async def _refuse(
        self, conn: AsyncConnection, row: Any, refusal: Refusal, now: datetime
    ) -> None:
        """Leave the run pending with its reason (a due delay that may not resume goes back
        to pending too)."""
        await conn.execute(
            update(workflow_executions)
            .where(_wx.id == row.id, _wx.status == row.status)
            .values(
                status=Status.PENDING,
                wake_at=None,
                pending_reason=refusal.reason,
                execution_mode="queued",
                updated_at=now,
            )
        )

    async def slot_waiters(self, record: ExecutionRecord) -> list[tuple[UUID, int]]:
        """The pending runs that a slot freed by `record` may let start, best first:
        (id, priority) of its concurrency key's (and namespace's) next ones."""
        spec = record.flow or {}
        concurrency = spec.get("concurrency")
        found: dict[UUID, int] = {}
        if concurrency is not None:
            found.update(
                await self._pending(
                    concurrency["limit"],
                    _wx.namespace == record.namespace,
                    _wx.workflow_name == record.workflow_name,
                    _wx.concurrency_key == concurrency["key"],
                )
            )
        limit = spec.get("namespaceLimit")
        if limit:
            found.update(
                await self._pending(limit, _wx.namespace == record.namespace, _wx.flow.isnot(None))
            )
        found.pop(record.id, None)
        return list(found.items())

    async def _pending(self, limit: int, *where: Any) -> dict[UUID, int]:
        query = (
            select(_wx.id, _wx.priority)
            .where(_wx.status == Status.PENDING, *where)
            .order_by(_wx.priority.desc(), _wx.created_at, _wx.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return {r.id: r.priority for r in (await conn.execute(query)).all()}


def _bucket(row: Any, rate: dict[str, Any]) -> str:
    return json.dumps([row.namespace, row.workflow_name, rate["key"]])
