"""Alembic environment: async engines, the app's tables as the target, batch mode on SQLite."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from app.config import get_settings
from app.store.database import make_engine
from app.store.tables import metadata

config = context.config
target_metadata = metadata

# Only the alembic command line configures logging: inside a running service, the service's
# own logging setup must stay as it is.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Any constant will do, as long as every Turnout process uses the same one.
MIGRATION_LOCK_ID = 0x7475726E6F7574  # "turnout"


def database_url() -> str:
    """`-x url=...`, else `sqlalchemy.url` from the caller's config, else DATABASE_URL."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    """Write the SQL to stdout (`alembic upgrade head --sql`)."""
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        transactional_ddl=True if sqlite else None,  # SQLite has it; alembic assumes not
        compare_type=True,
    )
    with context.begin_transaction():
        take_migration_lock(connection)
        context.run_migrations()


def take_migration_lock(connection: Connection) -> None:
    """Processes that start together (replicas, uvicorn workers) migrate one at a time; the
    ones that wait then find the schema at head and do nothing."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    elif connection.dialect.name == "sqlite":
        # Take the write lock before alembic reads the version table (busy_timeout waits).
        connection.exec_driver_sql("BEGIN IMMEDIATE")


async def run_async_migrations(url: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    # app.store.database.upgrade_schema hands over its connection: no second event loop.
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations(database_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
