"""The outbox: a delivery row per (subscription, commit), written in the events' own write.

A row carries a run of consecutive events of one commit that its subscription takes
(`seq` .. `last_seq`): a checkpoint's seven events take one row, not seven, so the outbox
costs a write, a lease and a record per commit rather than per event. A subscription whose
patterns skip some of a commit's events gets one row per run of those it takes.

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

    def takes_any(self, types: Sequence[str]) -> bool:
        """Whether some subscription's patterns take one of `types` (whatever its namespace
        and workflow): the publish of such events pokes the delivery loops."""
        return any(matches(t.events, kind) for t in self.targets for kind in types)

    def candidates(self, types: Sequence[str]) -> list[dict[str, Any]]:
        """`{i, j, sub, type, ns, wf}` for each subscription and run of consecutive events
        (1-based, `i` .. `j`) its patterns take, `type` the first one's; the write keeps
        those of the execution's namespace and workflow."""
        if not self.targets:
            return []
        found: list[dict[str, Any]] = []
        for t in self.targets:
            run: dict[str, Any] | None = None
            for i, kind in enumerate(types, start=1):
                if not matches(t.events, kind):
                    run = None
                elif run is not None:
                    run["j"] = i
                else:
                    run = {"i": i, "j": i, "sub": str(t.id), "type": kind, "ns": t.namespace}
                    run["wf"] = t.workflow
                    found.append(run)
        return found


def outbox_json(matcher: OutboxMatcher, events: Sequence[tuple[str, Any]]) -> str | None:
    """The candidates of a statement's events as its `:outbox` parameter (None: no CTE)."""
    found = matcher.candidates([kind for kind, _ in events])
    return dumps(found) if found else None


def outbox_cte(execution_id: str, seq: str) -> str:
    """The CTE adding an event statement's deliveries; `e` is its execution row (with
    `namespace` and `workflow_name`), `seq` the SQL of the seq of the candidate's `{i}`th
    event."""
    return _deliveries_cte(execution_id, "e", "CAST(:outbox AS jsonb)", seq)


def outbox_rows_cte(source: str, candidates: str, seq: str) -> str:
    """The deliveries CTE of a batched statement: each execution row of `source` carries its
    own candidates (`candidates`, a JSON array or NULL) and knows its namespace, workflow and
    events' seqs (`seq`, SQL of the seq of the candidate's `{i}`th event)."""
    return _deliveries_cte("e.id", source, candidates, seq)


def _deliveries_cte(execution_id: str, source: str, candidates: str, seq: str) -> str:
    return f"""
ob AS (
  INSERT INTO event_deliveries (subscription_id, execution_id, seq, last_seq, event_type,
                                status, attempts, next_attempt_at, created_at)
  SELECT d.sub, {execution_id}, {seq.format(i="d.i")}, {seq.format(i="d.j")}, d.type,
         'pending', 0, now(), now()
  FROM {source}, jsonb_to_recordset({candidates})
       AS d(i bigint, j bigint, sub uuid, type text, ns text, wf text)
  WHERE d.ns = e.namespace AND (d.wf IS NULL OR d.wf = e.workflow_name)
)"""


async def write_deliveries(
    conn: AsyncConnection, matcher: OutboxMatcher, stored: Sequence[EventRecord]
) -> int:
    """The deliveries of events just inserted on `conn` (same transaction), of one
    execution or of many (a group of creations); how many."""
    if not matcher.targets:
        return 0
    by_execution: dict[UUID, list[EventRecord]] = {}
    for event in stored:
        by_execution.setdefault(event.execution_id, []).append(event)
    found = {x: matcher.candidates([e.type for e in events]) for x, events in by_execution.items()}
    wanted = [x for x, candidates in found.items() if candidates]
    if not wanted:
        return 0
    owners = {
        row.id: (row.namespace, row.workflow_name)
        for row in await conn.execute(
            select(
                workflow_executions.c.id,
                workflow_executions.c.namespace,
                workflow_executions.c.workflow_name,
            ).where(workflow_executions.c.id.in_(wanted))
        )
    }
    rows = [
        {
            "subscription_id": UUID(c["sub"]),
            "execution_id": x,
            "seq": by_execution[x][c["i"] - 1].seq,
            "last_seq": by_execution[x][c["j"] - 1].seq,
            "event_type": c["type"],
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": by_execution[x][c["i"] - 1].created_at,
            "created_at": by_execution[x][c["i"] - 1].created_at,
        }
        for x in wanted
        if x in owners
        for c in found[x]
        if c["ns"] == owners[x][0] and c["wf"] in (None, owners[x][1])
    ]
    if rows:
        await conn.execute(insert(event_deliveries), rows)
    return len(rows)
