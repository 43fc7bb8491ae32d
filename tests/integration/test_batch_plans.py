"""The group-committed statements (creations, claims, checkpoints) are planned once per
connection, and the plan made while a new install's tables were empty stays an index plan
once they are full.

Their connections (app.store.database.BATCH_SERVER_SETTINGS) force generic plans: with
Postgres's default, the claim and the checkpoint were planned afresh nearly every call, 0.5
ms of Postgres CPU each. A generic plan made over empty tables may be seq scans, and a
connection keeps it until the table is next analysed; the test disables autovacuum so
nothing re-plans it, fills the tables, and counts the scans the same statements make."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.state import StepState
from app.engine.status import Status, StepStatus
from app.store.database import BATCH_SERVER_SETTINGS, make_engine
from app.store.records import Checkpoint
from app.store.repository import Repository
from tests.integration.test_group_commit import new_execution

TABLES = ("workflow_executions", "execution_events", "execution_steps")
FILLED = 30_000


async def _one_run(repo: Repository) -> None:
    """A run's writes through the repository: its creation, claim, a checkpoint, its end."""
    new = new_execution()
    await repo.create_executions([(new, [("execution.created", {})])])
    assert await repo.claim(new.id, "w", 60_000, ("execution.started", {})) is not None
    step = StepState(key="a", node_id="a", status=StepStatus.RUNNING, attempt=1)
    await repo.checkpoint(new.id, "w", Checkpoint([step], [("step.started", {})]), 60_000)
    done = StepState(key="a", node_id="a", status=StepStatus.COMPLETED, attempt=1, output=1)
    end = Checkpoint(
        [done], [("step.completed", {}), ("execution.completed", {})], status=Status.COMPLETED
    )
    await repo.checkpoint(new.id, "w", end, 60_000)


async def _fill(engine: AsyncEngine) -> None:
    """FILLED ended runs with their events and steps (no ANALYZE: the plans stay)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflow_executions (id, workflow_name, status, execution_mode,"
                " requested_mode, input, definition, created_at, updated_at, last_seq,"
                " progress_total, namespace) SELECT md5(g::text)::uuid, 'test', 'completed',"
                " 'queued', 'queued', '{}', '{}', now(), now(), 3, 1, 'default'"
                " FROM generate_series(1, :n) g"
            ),
            {"n": FILLED},
        )
        await conn.execute(
            text(
                "INSERT INTO execution_events (execution_id, seq, type, data, created_at)"
                " SELECT md5(g::text)::uuid, s, 'step.completed', '{}', now()"
                " FROM generate_series(1, :n) g, generate_series(1, 3) s"
            ),
            {"n": FILLED},
        )
        await conn.execute(
            text(
                "INSERT INTO execution_steps (execution_id, step_key, node_id, status, attempt,"
                " state, updated_at) SELECT md5(g::text)::uuid, 'a', 'a', 'completed', 1, '{}',"
                " now() FROM generate_series(1, :n) g"
            ),
            {"n": FILLED},
        )


async def _scans(engine: AsyncEngine) -> dict[str, tuple[int, int]]:
    """(seq scans, index scans) of each table, as the statistics have them now."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT relname, seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                " WHERE relname = ANY(:tables)"
            ),
            {"tables": list(TABLES)},
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in found}


async def _prepared(batch: AsyncEngine) -> list[Any]:
    """The batch connection's prepared statements (its one connection) and its statistics
    flushed, so that `_scans` sees what it did."""
    async with batch.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        await conn.commit()
        found = await conn.execute(
            text(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'WITH r AS%'"
            )
        )
        rows = list(found)
        await conn.commit()
    return rows


async def test_plans_made_over_empty_tables_use_the_indexes_once_they_are_full(
    engine: AsyncEngine, db_url: str
) -> None:
    async with engine.begin() as conn:  # a new install: empty, analysed, never re-planned
        for table in TABLES:
            await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            await conn.execute(text(f"ANALYZE {table}"))
    batch = make_engine(db_url, server_settings=BATCH_SERVER_SETTINGS, pool_size=1, max_overflow=0)
    repo = Repository(engine, batch_engine=batch)
    try:
        for _ in range(8):  # each statement's plan is made now, over (nearly) empty tables
            await _one_run(repo)
        await _fill(engine)
        await _prepared(batch)
        before = await _scans(engine)
        for _ in range(3):
            await _one_run(repo)
        statements = await _prepared(batch)
        after = await _scans(engine)
        # creation, claim, two checkpoint shapes: each planned once, generic, and reused
        assert len(statements) >= 4, statements
        assert all(s.custom_plans == 0 and s.generic_plans >= 11 for s in statements), [
            (s.statement[:80], s.generic_plans, s.custom_plans) for s in statements
        ]
        seq = {t: after[t][0] - before[t][0] for t in TABLES}
        assert seq == dict.fromkeys(TABLES, 0), seq
        assert after["workflow_executions"][1] > before["workflow_executions"][1]
    finally:
        await batch.dispose()
        async with engine.begin() as conn:
            for table in TABLES:
                await conn.execute(text(f"ALTER TABLE {table} RESET (autovacuum_enabled)"))
