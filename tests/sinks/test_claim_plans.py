"""The delivery loop's statements stay cheap with a backlog, whatever the statistics say.

A table of delivered rows that a burst (or a receiver's outage) fills with pending ones is
the case that matters: the statistics, taken before the burst, say nothing is pending, and a
plan built on that scanned the whole backlog for every claim (a second a claim with 9,000
pending rows, measured). So is a new install's: a connection's prepared statement may keep
the generic plan it made while the table was small (seq scans) until the table is next
analysed or vacuumed. The figures asserted are buffer hits, which do not depend on the
machine's speed."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.sinks.parts import SINK_SERVER_SETTINGS, build_sinks
from app.store import pg_deliveries
from app.store.database import make_engine
from app.store.deliveries import DeliveryStore
from tests import plans

SUB = UUID("00000000-0000-0000-0000-00000000000a")
LONG = UUID("00000000-0000-0000-0000-00000000000b")
HISTORY, QUEUES, PER_QUEUE, LEASED, LONG_HISTORY = 30_000, 3_000, 3, 50, 5_000


async def _fill(engine: AsyncEngine, analyse_after_backlog: bool, analyse: bool = True) -> None:
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
    if analyse and not analyse_after_backlog:
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
    if analyse and analyse_after_backlog:
        await _analyse(engine)


async def _analyse(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # ANALYZE's statistics commit with the transaction
        await conn.execute(text("ANALYZE event_deliveries"))


async def _buffers(engine: AsyncEngine, statement: Any, params: dict[str, Any]) -> int:
    """Shared buffers a statement touches (run, then rolled back)."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        found = await plans.explain(conn, statement.text, params)
        await trans.rollback()
    return _touched(found["Plan"])


def _touched(top: dict[str, Any]) -> int:
    """Buffers a plan touched: its top node's, and those of the data-modifying CTE nothing
    reads (`done`), which Postgres runs after the rest and leaves out of the top's count."""
    done = [n for n in plans.nodes(top) if n.get("Subplan Name") == "CTE done"]
    return sum(plans.buffers(n) for n in [top, *done])


def _prepared(name: str, statement: Any, params: dict[str, Any]) -> tuple[str, str]:
    """PREPARE and EXECUTE text for the statement, its parameters inlined as literals."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r"(?<!:):([a-z_]+)", number, statement.text)

    def literal(value: Any) -> str:
        if isinstance(value, list):
            return "'{" + ",".join(str(v) for v in value) + "}'"  # coerced to the type
        return str(value) if isinstance(value, int) else f"'{value}'"

    values = ", ".join(literal(params[n]) for n in names)
    return f"PREPARE {name} AS {sql}", f"EXECUTE {name}({values})"


def _record(heads: list[Any]) -> dict[str, Any]:
    """DELIVERED_AND_NEXT's parameters: the heads (`id`, `execution_id`, seq 0) delivered,
    and what follows each leased."""
    return {
        "now": utcnow(),
        "ids": [h.id for h in heads],
        "statuses": [204] * len(heads),
        "subs": [SUB] * len(heads),
        "executions": [h.execution_id for h in heads],
        "afters": [0] * len(heads),
        "owner": "w",
        "expires": utcnow(),
    }


async def _unleased_heads(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT id, execution_id FROM event_deliveries WHERE status = 'pending'"
                " AND seq = 0 AND lease_owner IS NULL ORDER BY id LIMIT 50"
            )
        )
        return list(found)


async def _cached_plan(
    sinks: AsyncEngine, engine: AsyncEngine, statement: Any
) -> tuple[dict[str, Any], datetime]:
    """A delivery connection runs `statement` while the table is small (a new install: a
    cached generic plan is made then), then once the backlog is there: EXPLAIN ANALYZE of
    that run."""
    claim = statement is pg_deliveries.CLAIM
    now = utcnow()
    early = {"now": now, "owner": "w", "queues": 50, "expires": now}
    prepare, execute = _prepared("cached", statement, early if claim else _record([]))
    async with sinks.connect() as conn:
        await conn.execute(text(prepare))
        for _ in range(10):  # Postgres keeps a generic plan after five runs
            await conn.execute(text(execute))
        await conn.commit()
        await _fill(engine, analyse_after_backlog=False, analyse=False)
        if not claim:
            late = _record(await _unleased_heads(engine))
            now = late["now"]
            _, execute = _prepared("cached", statement, late)
        trans = await conn.begin()
        found = await plans.explain(conn, execute)
        await trans.rollback()
    return found, now


@pytest.mark.parametrize(
    ("statement", "most"),
    [(pg_deliveries.CLAIM, 3_000), (pg_deliveries.DELIVERED_AND_NEXT, 2_000)],
    ids=["claim", "record"],
)
async def test_a_plan_made_on_a_new_install_stays_cheap_with_a_backlog(
    engine: AsyncEngine, db_url: str, statement: Any, most: int
) -> None:
    """Measured before the fix: the claim's cached plan (seq scans) touched 11,200,851
    buffers, 42 s; the settings' cost penalty also made Postgres JIT-compile every claim."""
    async with engine.begin() as conn:  # no ANALYZE or VACUUM may re-plan it meanwhile
        await conn.execute(text("ALTER TABLE event_deliveries SET (autovacuum_enabled = false)"))
        await conn.execute(text("ANALYZE event_deliveries"))  # a new install: nothing yet
    sinks = make_engine(db_url, server_settings=SINK_SERVER_SETTINGS, pool_size=1)
    try:
        found, now = await _cached_plan(sinks, engine, statement)
        top = found["Plan"]
        assert _touched(top) < most
        assert "JIT" not in found
        # Planned for this run: its `now` is in the plan as a value, not as `$1`.
        assert str(now)[:19] in json.dumps(found)
        scans = {n["Node Type"] for n in plans.nodes(top) if n.get("Relation Name")}
        assert "Seq Scan" not in scans, scans
        assert int(top["Actual Rows"]) > 0
    finally:
        await sinks.dispose()
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE event_deliveries RESET (autovacuum_enabled)"))


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
        record = _record(heads)
        assert await _buffers(sinks, pg_deliveries.DELIVERED_AND_NEXT, record) < 2_000
    finally:
        await sinks.dispose()


async def test_the_sinks_connections_have_their_planner_settings(db_url: str) -> None:
    sinks = make_engine(db_url, server_settings=SINK_SERVER_SETTINGS, pool_size=1)
    try:
        async with sinks.connect() as conn:
            for name in ("enable_bitmapscan", "enable_seqscan", "enable_sort", "jit"):
                assert await conn.scalar(text(f"SHOW {name}")) == "off", name
            assert await conn.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
            assert await conn.scalar(text("SHOW application_name")) == "turnout-sinks"
    finally:
        await sinks.dispose()


async def test_only_the_delivery_loop_reads_with_its_planner_settings(
    engine: AsyncEngine, settings: Settings
) -> None:
    """The API's and the dashboard's reads of deliveries (lists ordered by id, failures) want
    the planner's own choices: with sorts and seq scans off, a list of a few pending rows
    would walk a subscription's whole history instead."""
    parts = build_sinks(settings, engine, None, "w", deliver=True)
    try:
        assert parts.own_engine is not None and parts.dispatcher is not None
        assert parts.deliveries.engine is engine
        assert parts.dispatcher.deliveries.engine is parts.own_engine
    finally:
        await parts.close()
