"""Shared fixtures: a throwaway Postgres database and Redis namespace per test session."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.execution.queue import purge_namespace
from app.store.database import make_engine, upgrade_schema
from tests.support.throwaway import throwaway_redis  # noqa: F401 (a fixture for all tests)

PG_BASE_URL = os.environ.get(
    "TURNOUT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TURNOUT_TEST_REDIS", "redis://127.0.0.1:6379/0")
TABLES = (
    "workflow_executions",
    "execution_steps",
    "execution_events",
    "workflows",
    "execution_rollups",
    "execution_rollup_errors",
    "analytics_watermark",
    "api_keys",
    "api_sessions",
    "audit_log",
    "secrets",
    "schedules",
    "events",
    "event_waits",
    "flow_buckets",
    "subscriptions",
    "event_deliveries",
)
CONNECT_TIMEOUT_S = 5


class IsolatedSettings(Settings):
    """Settings from keyword arguments only: the developer's environment cannot leak in."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def unique_name() -> str:
    return f"turnout_test_{secrets.token_hex(6)}"


def _admin_engine() -> AsyncEngine:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return make_engine(
        PG_BASE_URL,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )


async def create_database(name: str) -> str:
    """Create an empty database next to TURNOUT_TEST_PG and return its URL."""
    engine = _admin_engine()
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is not usable at {make_url(PG_BASE_URL)!r} ({exc!r}). Start it "
            "(.ci/run shows how) or point TURNOUT_TEST_PG at a server where the user may "
            "create databases.",
            pytrace=False,
        )
    finally:
        await engine.dispose()
    return make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(name: str) -> None:
    engine = _admin_engine()
    try:
        async with engine.connect() as conn:
            # Connections leaked by a failed test would otherwise block the DROP.
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="session")
async def pg_database_url() -> AsyncIterator[str]:
    """A database created for this session and migrated to head once; dropped at the end."""
    name = unique_name()
    url = await create_database(name)
    try:
        await upgrade_schema(url)
        yield url
    finally:
        await drop_database(name)


@pytest_asyncio.fixture(scope="session")
async def _session_engine(pg_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(pg_database_url, pool_size=2, max_overflow=8)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def db_url(pg_database_url: str, _session_engine: AsyncEngine) -> str:
    """The session database's URL, its tables emptied for this test."""
    async with _session_engine.begin() as conn:
        # An engine a previous test left open would make TRUNCATE wait forever: fail instead.
        await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        await conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    return pg_database_url


@pytest_asyncio.fixture
async def engine(db_url: str, _session_engine: AsyncEngine) -> AsyncEngine:
    """An engine on the session database, its tables emptied for this test."""
    return _session_engine


@pytest_asyncio.fixture
async def empty_pg_url() -> AsyncIterator[str]:
    """A brand-new database with no schema at all, dropped after the test."""
    name = unique_name()
    url = await create_database(name)
    try:
        yield url
    finally:
        await drop_database(name)


@pytest_asyncio.fixture(scope="session")
async def redis_url() -> str:
    """TURNOUT_TEST_REDIS, checked to answer."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc!r}). Start it (.ci/run shows how) "
            "or point TURNOUT_TEST_REDIS at a server.",
            pytrace=False,
        )
    finally:
        await client.aclose()
    return REDIS_URL


@pytest_asyncio.fixture(scope="session")
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key and channel prefix of this session; its keys are deleted at the end."""
    prefix = unique_name()
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        await purge_namespace(client, prefix)  # with arq's keys of its queues' jobs
    finally:
        await client.aclose()


@pytest.fixture
def settings(db_url: str, redis_url: str, key_prefix: str) -> Settings:
    """Settings on the test database (emptied) and the session's Redis namespace."""
    return IsolatedSettings(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        # A queue and channels of this test alone: jobs left by one test never reach another.
        key_prefix=f"{key_prefix}:{secrets.token_hex(3)}",
        queue_name=f"{key_prefix}:{secrets.token_hex(3)}:queue",
        http_allow_private=True,
        log_json=False,
    )
