"""The batched claim finds its rows by primary key, whatever the planner believes of the
status column: with statistics taken while few runs were pending (a table that grew since,
as under a burst of submissions), a `status = 'pending' OR ...` predicate made the planner
scan every pending row for each claim (1.3 ms a claim with 2,000 pending)."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.state import utcnow
from app.store import pg_batch
from app.store.records import NewExecution
from app.store.repository import Repository
from app.store.tables import workflow_executions
from tests.integration.test_group_commit import new_execution


async def test_the_batched_claim_reads_by_primary_key_with_stale_statistics(
    engine: AsyncEngine,
) -> None:
    repo = Repository(engine)
    first = new_execution()
    await repo.create_execution(first, [("execution.created", {})])
    done = [new_execution() for _ in range(20)]
    await repo.create_executions([(n, [("execution.created", {})]) for n in done])
    async with engine.connect() as conn:  # the statistics see 20 ended runs, 1 pending
        await conn.execute(
            text("UPDATE workflow_executions SET status = 'completed' WHERE id <> :id"),
            {"id": first.id},
        )
        await conn.execute(text("ANALYZE workflow_executions"))
        await conn.commit()
    more: list[NewExecution] = [new_execution() for _ in range(2000)]
    await repo.create_executions([(n, [("execution.created", {})]) for n in more])

    columns = tuple(c.name for c in workflow_executions.columns)
    sql = pg_batch.claim_many_sql(columns)
    now = utcnow().isoformat()
    rows = [
        {"id": str(first.id), "owner": "w", "expires": now, "now": now, "type": "t", "data": {}}
    ]
    statement = str(sql).replace(":rows", "$1").replace(":ids", "$2")
    async with engine.connect() as conn:
        # The plan a prepared statement settles on after five runs (asyncpg prepares every
        # statement): the generic one, which cannot see how many ids the array holds.
        await conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await conn.execute(text(f"PREPARE claim(jsonb, uuid[]) AS {statement}"))
        literal = json.dumps(rows).replace("'", "''")
        found = await conn.execute(
            text(f"EXPLAIN EXECUTE claim('{literal}', ARRAY['{first.id}']::uuid[])")
        )
        plan = "\n".join(r[0] for r in found)
        await conn.rollback()
    assert "ix_workflow_executions_status" not in plan, plan
    assert "workflow_executions_pkey" in plan, plan
