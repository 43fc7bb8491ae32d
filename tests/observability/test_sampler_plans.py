"""The sampled gauges read the live executions, not the history: the age of the oldest
pending run comes from the status index, however many runs ended before it. The pending
runs are the newest, which the planner's estimate for a bare min() ignores: it expected a
pending run every 20 entries of the creation-time index, and walked all 30,000 ended ones
(in W4, 66,000 rows and 135 ms a sample, every 5 s in every process, growing with the
history)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.store.history import HistoryStore
from tests import plans


async def test_the_oldest_pending_run_is_found_without_walking_the_history(
    engine: AsyncEngine,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflow_executions (id, workflow_name, status, execution_mode,"
                " created_at, updated_at, input, definition) SELECT md5(g::text)::uuid, 'w',"
                " CASE WHEN g > 30000 THEN 'pending' ELSE 'completed' END, 'queued',"
                " CAST(:start AS timestamptz) + g * interval '10 ms', :start, '{}', '{}'"
                " FROM generate_series(1, 31500) g"
            ),
            {"start": start},
        )
        await conn.execute(text("ANALYZE workflow_executions"))
    store = HistoryStore(engine)
    oldest = await store.oldest_pending()
    assert oldest == start + timedelta(milliseconds=300_010)
    query = store.oldest_pending_query().compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}
    )
    async with store._live_reads() as conn:  # as the sampler reads it
        found = await plans.explain(conn, str(query))
    # Measured: 37 buffers; the bare min() walked the 30,000 ended runs, 816.
    assert plans.buffers(found["Plan"]) < 300


async def _scans(conn: AsyncConnection, sql: str) -> set[str]:
    plan = await conn.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
    found = json.dumps(json.loads(plan) if isinstance(plan, str) else plan)
    return {kind for kind in ("Seq Scan", "Index Scan", "Bitmap Heap Scan") if kind in found}


async def test_the_live_counts_do_not_read_the_history_with_statistics_of_a_burst(
    engine: AsyncEngine,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    async with engine.begin() as conn:  # a burst: two thirds of the table pending, analysed
        await conn.execute(
            text(
                "INSERT INTO workflow_executions (id, workflow_name, status, execution_mode,"
                " created_at, updated_at, input, definition) SELECT md5(g::text)::uuid, 'w',"
                " CASE WHEN g % 3 <> 0 THEN 'pending' ELSE 'completed' END, 'queued',"
                " CAST(:start AS timestamptz) + g * interval '10 ms', :start, '{}', '{}'"
                " FROM generate_series(1, 20000) g"
            ),
            {"start": start},
        )
        await conn.execute(text("ANALYZE workflow_executions"))
    async with engine.begin() as conn:  # then it drained, and nothing analysed it since
        await conn.execute(
            text(
                "UPDATE workflow_executions SET status = 'completed'"
                " WHERE status = 'pending' AND id <> md5('2')::uuid"
            )
        )
    store = HistoryStore(engine)
    assert await store.live_counts() == {("pending", "queued"): 1}
    sql = str(
        store.live_counts_query().compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
    )
    async with engine.connect() as conn:  # what the planner reads on its own: everything
        assert "Seq Scan" in await _scans(conn, sql)
    async with store._live_reads() as conn:  # what the gauges' reads get
        assert "Seq Scan" not in await _scans(conn, sql)
