"""The outbox: a delivery row per (event, subscription), written in the event's own write.

`OutboxMatcher` holds this process's subscriptions (refreshed by `app.sinks.cache`), so a
write finds the candidate subscriptions of its events without a query; the execution's
namespace and workflow, known to the write itself, pick the ones that apply. On Postgres
the rows go in through one more CTE of the event's statement (`outbox_cte`); on the
multi-statement path (SQLite, control writes) through `write_deliveries` in the same
transaction. Either way an event and its deliveries commit together or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.jsonvalue import dumps
from app.sinks.patterns import matches
from app.store.records import EventRecord
from app.store.tables import event_deliveries, workflow_executions

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Target:
    """What a write needs of a subscription to know whether an event goes to it."""

    id: UUID
    namespace: str
    workflow: str | None
    events: tuple[str, ...]


class OutboxMatcher:
    """The subscriptions taking events, as this process last loaded them."""

    def __init__(self) -> None:
        self.targets: tuple[Target, ...] = ()
        self.loaded = False

    def replace(self, targets: Sequence[Target]) -> None:
        self.targets = tuple(targets)
        self.loaded = True

    def candidates(self, types: Sequence[str]) -> list[dict[str, Any]]:
        """`{i, sub, type, ns, wf}` for each event (1-based `i`) and subscription whose
        patterns take its type; the write keeps those of the execution's namespace and
        workflow."""
        if not self.targets:
            return []
        return [
            {"i": i, "sub": str(t.id), "type": kind, "ns": t.namespace, "wf": t.workflow}
            for i, kind in enumerate(types, start=1)
            for t in self.targets
            if matches(t.events, kind)
        ]


def outbox_json(matcher: OutboxMatcher, events: Sequence[tuple[str, Any]]) -> str | None:
    """The candidates of a statement's events as its `:outbox` parameter (None: no CTE)."""
    found = matcher.candidates([kind for kind, _ in events])
    return dumps(found) if found else None


def outbox_cte(execution_id: str, seq: str) -> str:
    """The CTE adding an event statement's deliveries; `e` is its execution row (with
    `namespace` and `workflow_name`), `seq` the SQL of candidate `d.i`'s seq."""
    return f"""
ob AS (
  INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type, status,
                                attempts, next_attempt_at, created_at)
  SELECT d.sub, {execution_id}, {seq}, d.type, 'pending', 0, now(), now()
  FROM e, jsonb_to_recordset(CAST(:outbox AS jsonb))
       AS d(i bigint, sub uuid, type text, ns text, wf text)
  WHERE d.ns = e.namespace AND (d.wf IS NULL OR d.wf = e.workflow_name)
)"""


def outbox_rows_cte(source: str, candidates: str, seq: str) -> str:
    """The deliveries CTE of a batched statement: each execution row of `source` carries its
    own candidates (`candidates`, a JSON array or NULL) and knows its namespace, workflow and
    events' seqs (`seq`, SQL over candidate `d.i`)."""
    return f"""
ob AS (
  INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type, status,
                                attempts, next_attempt_at, created_at)
  SELECT d.sub, e.id, {seq}, d.type, 'pending', 0, now(), now()
  FROM {source}, jsonb_to_recordset({candidates})
       AS d(i bigint, sub uuid, type text, ns text, wf text)
  WHERE d.ns = e.namespace AND (d.wf IS NULL OR d.wf = e.workflow_name)
)"""


async def write_deliveries(
    conn: AsyncConnection, matcher: OutboxMatcher, stored: Sequence[EventRecord]
) -> int:
    """The deliveries of events just inserted on `conn` (same transaction); how many."""
    found = matcher.candidates([e.type for e in stored])
    if not found:
        return 0
    execution_id = stored[0].execution_id
    row = (
        await conn.execute(
            select(workflow_executions.c.namespace, workflow_executions.c.workflow_name).where(
                workflow_executions.c.id == execution_id
            )
        )
    ).first()
    if row is None:
        return 0
    rows = [
        {
            "subscription_id": UUID(c["sub"]),
            "execution_id": execution_id,
            "seq": stored[c["i"] - 1].seq,
            "event_type": c["type"],
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": stored[c["i"] - 1].created_at,
            "created_at": stored[c["i"] - 1].created_at,
        }
        for c in found
        if c["ns"] == row.namespace and c["wf"] in (None, row.workflow_name)
    ]
    if rows:
        await conn.execute(insert(event_deliveries), rows)
    return len(rows)
