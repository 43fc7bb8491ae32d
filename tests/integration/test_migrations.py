"""The alembic migrations: they build exactly the schema of app/store/tables.py, both ways."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from app.store.database import alembic_config, make_engine, upgrade_head, upgrade_schema
from app.store.repository import Repository
from app.store.tables import metadata
from tests.support.executions import insert_pending

APP_TABLES = {
    "workflow_executions",
    "execution_steps",
    "execution_events",
    "workflows",
    "api_keys",
    "api_sessions",
    "audit_log",
    "secrets",
    # The analytics' rollups (migration 0005).
    "execution_rollups",
    "execution_rollup_errors",
    "analytics_watermark",
    # Schedules (migration 0007).
    "schedules",
    # Composition (migration 0008): events and the steps waiting for them.
    "events",
    "event_waits",
    # Rate limits' token buckets (migration 0009).
    "flow_buckets",
    # Event sinks (migration 0010).
    "subscriptions",
    "event_deliveries",
}


async def table_names(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def schema_diff(url: str) -> list[Any]:
    """What autogenerate would add to make the database match tables.py."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        await engine.dispose()


async def test_upgrade_head_creates_every_table(empty_pg_url: str) -> None:
    await upgrade_schema(empty_pg_url)

    assert await table_names(empty_pg_url) == APP_TABLES | {"alembic_version"}


async def test_downgrade_to_base_then_upgrade_again(empty_pg_url: str) -> None:
    await upgrade_schema(empty_pg_url)
    # The alembic command path: env.py opens its own engine and event loop (in this thread).
    await asyncio.to_thread(command.downgrade, alembic_config(empty_pg_url), "base")
    assert await table_names(empty_pg_url) == {"alembic_version"}

    await upgrade_schema(empty_pg_url)

    assert await table_names(empty_pg_url) == APP_TABLES | {"alembic_version"}
    assert await schema_diff(empty_pg_url) == []


async def upgrade_in_processes(url: str, count: int) -> None:
    """Run `count` upgrades at once, each in its own process, as replicas starting together do.

    (alembic keeps its context in module globals: one process runs one migration at a time.)
    """
    code = "import sys; from app.store.database import upgrade_head; upgrade_head(sys.argv[1])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    results = [await p.communicate() for p in processes]
    failures = [
        err.decode() for p, (_, err) in zip(processes, results, strict=True) if p.returncode
    ]
    assert failures == []


@pytest.mark.slow
async def test_concurrent_upgrades_on_postgres_take_turns(empty_pg_url: str) -> None:
    await upgrade_in_processes(empty_pg_url, 4)

    assert await table_names(empty_pg_url) == APP_TABLES | {"alembic_version"}


async def test_postgres_schema_matches_the_tables(pg_database_url: str) -> None:
    assert await schema_diff(pg_database_url) == []


async def test_sqlite_upgrade_matches_the_tables(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"

    await asyncio.to_thread(upgrade_head, url)

    assert await table_names(url) == APP_TABLES | {"alembic_version"}
    assert await schema_diff(url) == []


async def test_sqlite_downgrade_to_base_then_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
    await upgrade_schema(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
    assert await table_names(url) == {"alembic_version"}

    await upgrade_schema(url)

    assert await table_names(url) == APP_TABLES | {"alembic_version"}


@pytest.mark.slow
async def test_concurrent_upgrades_on_sqlite_take_turns(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"

    await upgrade_in_processes(url, 4)

    assert await table_names(url) == APP_TABLES | {"alembic_version"}


async def test_relative_sqlite_path_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "sqlite+aiosqlite:///./data/turnout.db"

    await upgrade_schema(url)

    assert (tmp_path / "data" / "turnout.db").is_file()
    assert await table_names(url) == APP_TABLES | {"alembic_version"}


async def test_sqlite_connections_get_their_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()

    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10_000}


async def test_the_outbox_keeps_room_for_hot_lease_updates(pg_database_url: str) -> None:
    """Migration 0012: half of each outbox page stays free (a lease's update stays on its
    page, with no new index entries), and the due index holds pending deliveries only."""
    engine = make_engine(pg_database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            options = await conn.scalar(
                text("SELECT reloptions FROM pg_class WHERE relname = 'event_deliveries'")
            )
            index = await conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_event_deliveries_due'")
            )
    finally:
        await engine.dispose()
    assert options == ["fillfactor=50"]
    assert "(next_attempt_at, id)" in index
    assert "WHERE ((status)::text = 'pending'::text)" in index


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_downgrading_the_delivery_ranges_gives_each_event_its_row(
    dialect: str, empty_pg_url: str, tmp_path: Path
) -> None:
    url = empty_pg_url if dialect == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    await upgrade_schema(url)
    engine = make_engine(url, poolclass=NullPool)
    try:
        execution_id = await insert_pending(Repository(engine), {"nodes": [{"id": "a"}]})
        async with engine.begin() as conn:  # two more events, and a delivery of all three
            for seq in (2, 3):
                await conn.execute(
                    text(
                        "INSERT INTO execution_events (execution_id, seq, type, data, created_at)"
                        " SELECT execution_id, :seq, 'step.started', data, created_at"
                        " FROM execution_events WHERE seq = 1"
                    ),
                    {"seq": seq},
                )
            await conn.execute(
                text(
                    "INSERT INTO event_deliveries (subscription_id, execution_id, seq, last_seq,"
                    " event_type, status, attempts, next_attempt_at, created_at)"
                    " SELECT :sub, execution_id, 1, 3, type, 'pending', 2, created_at, created_at"
                    " FROM execution_events WHERE seq = 1"
                ),
                {"sub": uuid.uuid4().hex if dialect == "sqlite" else str(uuid.uuid4())},
            )
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0012_lean_outbox")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT seq, event_type, status, attempts FROM event_deliveries"
                        " ORDER BY seq"
                    )
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            (1, "execution.created", "pending", 2),
            (2, "step.started", "pending", 2),
            (3, "step.started", "pending", 2),
        ]
    finally:
        await engine.dispose()
    assert execution_id is not None
