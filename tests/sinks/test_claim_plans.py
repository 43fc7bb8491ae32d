"""The delivery loop's statements stay cheap with a backlog, whatever the statistics say.

A table of delivered rows that a burst (or a receiver's outage) fills with pending ones is
the case that matters: the statistics, taken before the burst, say nothing is pending, and a
plan built on that scanned the whole backlog for every claim (a second a claim with 9,000
pending rows, measured). The figures asserted are buffer hits, which do not depend on the
machine's speed."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.state import utcnow
from app.sinks.parts import SINK_SERVER_SETTINGS
from app.store import pg_deliveries
from app.store.database import make_engine
from app.store.deliveries import DeliveryStore

SUB = UUID("00000000-0000-0000-0000-00000000000a")
LONG = UUID("00000000-0000-0000-0000-00000000000b")
HISTORY, QUEUES, PER_QUEUE, LEASED, LONG_HISTORY = 30_000, 3_000, 3, 50, 5_000


async def _fill(engine: AsyncEngine, analyse_after_backlog: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type,"
                " status, next_attempt_at, created_at) SELECT :sub, md5(g::text)::uuid, 1,"
                " 'x', 'delivered', now() - interval '1 hour', now()"
                " FROM generate_series(1, :n) g"
            ),
            {"sub": SUB, "n": HISTORY},
        )
        # One long-lived execution: thousands of commits delivered, one pending now, due
        # first. Its head test must not walk its history.
        await conn.execute(
            text(
                "INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type,"
                " status, next_attempt_at, created_at) SELECT :sub, :long, g, 'x',"
                " CASE WHEN g = :n THEN 'pending' ELSE 'delivered' END,"
                " now() - interval '2 minutes', now() FROM generate_series(1, :n) g"
            ),
            {"sub": SUB, "long": LONG, "n": LONG_HISTORY},
        )
    if not analyse_after_backlog:
        await _analyse(engine)
    async with engine.begin() as conn:  # the backlog: QUEUES queues, the first LEASED leased
        await conn.execute(
            text(
                "INSERT INTO event_deliveries (subscription_id, execution_id, seq, event_type,"
                " status, next_attempt_at, created_at, lease_owner, lease_expires_at)"
                " SELECT :sub, md5('b' || (g / :per)::text)::uuid, g % :per, 'x', 'pending',"
                " now() - interval '1 minute' + g * interval '1 ms', now(),"
                " CASE WHEN g / :per < :leased THEN 'busy' END,"
                " CASE WHEN g / :per < :leased THEN now() + interval '1 minute' END"
                " FROM generate_series(0, :n - 1) g"
            ),
            {"sub": SUB, "per": PER_QUEUE, "leased": LEASED, "n": QUEUES * PER_QUEUE},
        )
    if analyse_after_backlog:
        await _analyse(engine)


async def _analyse(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # ANALYZE's statistics commit with the transaction
        await conn.execute(text("ANALYZE event_deliveries"))


async def _buffers(engine: AsyncEngine, statement: Any, params: dict[str, Any]) -> int:
    """Shared buffers a statement touches (run, then rolled back)."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        plan = await conn.scalar(
            text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement.text), params
        )
        await trans.rollback()
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.parametrize("analyse_after_backlog", [False, True], ids=["stale", "fresh"])
async def test_a_claim_and_a_record_read_what_they_take_not_the_backlog(
    engine: AsyncEngine, db_url: str, analyse_after_backlog: bool
) -> None:
    await _fill(engine, analyse_after_backlog)
    sinks = make_engine(db_url, server_settings=SINK_SERVER_SETTINGS, pool_size=1)
    try:
        now = utcnow()
        claim = {"now": now, "owner": "w", "queues": 50, "expires": now}
        assert await _buffers(sinks, pg_deliveries.CLAIM, claim) < 3_000  # was 310,534
        store = DeliveryStore(sinks)
        claimed = await store.claim("w", 50, 30_000)
        assert len({r.execution_id for r in claimed}) == 50
        assert [r.seq for r in claimed if r.execution_id == LONG] == [LONG_HISTORY]
        assert len(claimed) == 49 * PER_QUEUE + 1
        assert all(r.body is None for r in claimed)  # these rows have no events
        heads = [r for r in claimed if r.seq == 0]
        record = {
            "now": utcnow(),
            "ids": [r.id for r in heads],
            "statuses": [204] * len(heads),
            "subs": [SUB] * len(heads),
            "executions": [r.execution_id for r in heads],
            "afters": [0] * len(heads),
            "owner": "w",
            "expires": utcnow(),
        }
        assert await _buffers(sinks, pg_deliveries.DELIVERED_AND_NEXT, record) < 1_000
    finally:
        await sinks.dispose()


async def test_the_sinks_connections_have_bitmap_scans_off(db_url: str) -> None:
    sinks = make_engine(db_url, server_settings=SINK_SERVER_SETTINGS, pool_size=1)
    try:
        async with sinks.connect() as conn:
            assert await conn.scalar(text("SHOW enable_bitmapscan")) == "off"
            assert await conn.scalar(text("SHOW application_name")) == "turnout-sinks"
    finally:
        await sinks.dispose()
