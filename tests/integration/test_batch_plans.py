"""The batched statements run on connections that plan them once (a generic plan), so that
plan must read every row by primary key, whatever the statistics say: here they were taken
while the table held 21 rows, 20 of them ended, before 2,000 more pending rows came."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.runtime import build_runtime
from app.store import pg_batch
from app.store.records import NewExecution
from app.store.repository import Repository
from app.store.tables import workflow_executions
from tests.integration.test_group_commit import new_execution

TYPES = {"rows": ("jsonb", "'[]'::jsonb"), "ids": ("uuid[]", "ARRAY[]::uuid[]")}
TYPES["now"] = ("timestamptz", "now()")
STATEMENTS: dict[str, Callable[[tuple[str, ...], bool], TextClause]] = {
    "create": pg_batch.create_many_sql,
    "claim": pg_batch.claim_many_sql,
    "checkpoint": pg_batch.checkpoint_many_sql,
}


@pytest.fixture
async def stale_statistics(engine: AsyncEngine) -> None:
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
        for table in ("workflow_executions", "execution_steps", "execution_events"):
            await conn.execute(text(f"ANALYZE {table}"))
        await conn.commit()
    more: list[NewExecution] = [new_execution() for _ in range(2000)]
    await repo.create_executions([(n, [("execution.created", {})]) for n in more])
    async with engine.connect() as conn:  # and three steps each, which ANALYZE never saw
        await conn.execute(
            text(
                "INSERT INTO execution_steps (execution_id, step_key, node_id, status, updated_at)"
                " SELECT id, k, k, 'completed', now() FROM workflow_executions,"
                " unnest(ARRAY['a', 'b', 'c']) AS k"
            )
        )
        await conn.commit()


async def generic_plan(engine: AsyncEngine, sql: TextClause) -> str:
    """EXPLAIN of the plan a connection with `plan_cache_mode = force_generic_plan` runs."""
    statement = str(sql)
    names = list(dict.fromkeys(re.findall(r"(?<![:\w]):([a-z_]+)\b", statement)))
    for n, name in enumerate(names, start=1):
        statement = re.sub(rf"(?<![:\w]):{name}\b", f"${n}", statement)
    types = ", ".join(TYPES[name][0] for name in names)
    values = ", ".join(TYPES[name][1] for name in names)
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await conn.execute(text(f"PREPARE batched({types}) AS {statement}"))
        found = await conn.execute(text(f"EXPLAIN EXECUTE batched({values})"))
        plan = "\n".join(r[0] for r in found)
        await conn.rollback()
        await conn.execute(text("DEALLOCATE batched"))  # a PREPARE outlives its transaction
    return plan


@pytest.mark.parametrize("outbox", [False, True], ids=["plain", "with-outbox"])
@pytest.mark.parametrize("kind", list(STATEMENTS))
async def test_the_generic_plan_of_each_batched_statement_reads_by_primary_key(
    engine: AsyncEngine, stale_statistics: None, kind: str, outbox: bool
) -> None:
    columns = tuple(c.name for c in workflow_executions.columns)
    if kind == "checkpoint":  # the values a run's end writes (RunStore._write_checkpoints)
        columns = ("completed_at", "lease_expires_at", "lease_owner", "progress_done", "result")
    plan = await generic_plan(engine, STATEMENTS[kind](columns, outbox))
    assert "Seq Scan on workflow_executions" not in plan, plan
    assert "Seq Scan on execution_steps" not in plan, plan
    assert "ix_workflow_executions_status" not in plan, plan
    if kind != "create":  # an insert reads no execution row
        assert "workflow_executions_pkey" in plan, plan


async def test_only_the_batch_pool_plans_once(settings: Settings) -> None:
    runtime = build_runtime(settings, role="worker")
    show = text("SELECT current_setting('plan_cache_mode')")
    try:
        async with runtime.repo.batch_engine.connect() as conn:
            assert (await conn.execute(show)).scalar_one() == "force_generic_plan"
        async with runtime.repo.engine.connect() as conn:
            assert (await conn.execute(show)).scalar_one() == "auto"
        assert runtime.repo.batch_engine is not runtime.repo.engine
    finally:
        await runtime.close()
