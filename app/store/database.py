"""Engines for Postgres (asyncpg) and SQLite (aiosqlite), and schema upgrades through alembic."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

import app
from app.config import Settings
from app.jsonvalue import dumps

# Connections older than this are replaced: cheaper than a pre-ping on every checkout, and it
# outlives neither a server-side idle timeout nor a failover by much.
POOL_RECYCLE_S = 1800
CONNECT_TIMEOUT_S = 5.0
# How long a SQLite writer waits for another one before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


# SQLite has one writer at a time, and its busy timeout is a poll (sleep, try again) that a
# writer can lose over and over while others keep winning: under load one of them waits out
# the timeout and fails with "database is locked". So the writers of one process take turns
# on a first-come, first-served lock instead; the busy timeout is left for other processes.
_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def sqlite_writer(engine: AsyncEngine) -> asyncio.Lock:
    """The lock this event loop's writers to `engine`'s SQLite database queue on."""
    locks = _WRITERS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(engine.url.database or ":memory:", asyncio.Lock())


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached (down, restarting, network)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc, OperationalError | InterfaceError) or _is_pg_unavailable(exc.orig)
    return False


def _is_pg_unavailable(orig: BaseException | None) -> bool:
    # asyncpg's "cannot connect now" (starting up / shutting down) and the admin shutdown
    # that ends open connections; by SQLSTATE class 08 (connection) and 57P (operator).
    sqlstate = getattr(orig, "sqlstate", None) or ""
    return sqlstate.startswith(("08", "57P"))


def create_engine(settings: Settings) -> AsyncEngine:
    """The process-wide engine for `settings.database_url`, pooled as configured."""
    pool: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_recycle": POOL_RECYCLE_S,
        "pool_pre_ping": False,
    }
    return make_engine(settings.database_url, **pool)


# The group-committed statements' connections (creations, claims, checkpoints: the
# statements every run makes): each connection plans each statement once, and that plan
# uses the indexes whatever the tables held when it was made. With Postgres's default
# (`auto`), the claim and the checkpoint were planned afresh nearly every time: 0.5 ms of
# Postgres CPU each, a third of what Postgres spent on a run (2026-12-08, bench.drain with
# pg_stat_statements). A generic plan made over a new install's empty tables would be seq
# scans, kept until the next ANALYZE; with seq scans off it is index scans (the statements
# reach every row by primary key). See tests/integration/test_batch_plans.py.
BATCH_SERVER_SETTINGS = {
    "application_name": "turnout-batch",
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "jit": "off",
}


def create_batch_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine | None:
    """The group-committed statements' own few connections, on Postgres (None elsewhere:
    they use the process's `engine`). A lost connection on either makes both pools start
    afresh, as one pool does on its own (`share_disconnects`)."""
    if make_url(settings.database_url).get_driver_name() != "asyncpg":
        return None
    batch = make_engine(
        settings.database_url,
        pool_size=settings.db_batch_pool_size,
        max_overflow=settings.db_batch_pool_size,
        pool_recycle=POOL_RECYCLE_S,
        pool_pre_ping=False,
        server_settings=BATCH_SERVER_SETTINGS,
    )
    share_disconnects(engine, batch)
    return batch


def share_disconnects(*engines: AsyncEngine) -> None:
    """When a statement on one of `engines` finds its connection gone (Postgres restarted),
    the others drop their pooled connections too. One engine does so for its own pool;
    without this, the first statement on each idle connection of the others would fail
    after an outage that they did not see."""
    disposals: set[asyncio.Task[None]] = set()

    def on_error(context: ExceptionContext) -> None:
        if not context.is_disconnect:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: nothing of ours to drop
            return
        for other in engines:
            if other.sync_engine is not context.engine:
                task = loop.create_task(other.dispose())
                disposals.add(task)
                task.add_done_callback(disposals.discard)

    for engine in engines:
        event.listen(engine.sync_engine, "handle_error", on_error)


def make_engine(
    database_url: str, *, server_settings: dict[str, str] | None = None, **engine_kwargs: Any
) -> AsyncEngine:
    """An async engine for any supported URL; SQLite gets its pragmas and an absolute path.
    `server_settings`: Postgres settings of its sessions (with asyncpg)."""
    url = make_url(database_url)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and _is_memory(url):
        # Every new connection to :memory: is a new, empty database: keep exactly one.
        engine_kwargs["poolclass"] = StaticPool
    elif sqlite:
        url = _absolute_sqlite_url(url)
    if engine_kwargs.get("poolclass") in (NullPool, StaticPool):
        for key in ("pool_size", "max_overflow", "pool_timeout"):
            engine_kwargs.pop(key, None)
    if url.get_driver_name() == "asyncpg":
        connect_args = engine_kwargs.setdefault("connect_args", {})
        connect_args.setdefault(
            "server_settings", {"application_name": "turnout", **(server_settings or {})}
        )
        # asyncpg waits 60 s for a connection by default: fail fast so an outage gives 503s
        # and backoffs rather than hung requests.
        connect_args.setdefault("timeout", CONNECT_TIMEOUT_S)
    # JSON columns are written by the one encoder every writer shares (app/jsonvalue.py).
    engine_kwargs.setdefault("json_serializer", dumps)
    engine = create_async_engine(url, **engine_kwargs)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling stays: it opens a transaction right before the
    # first write, so busy_timeout applies; a read-then-write transaction would instead fail
    # at once with SQLITE_BUSY when another process wrote in between.
    cursor = dbapi_connection.cursor()
    try:
        # First, so that even switching the journal mode waits for another process.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers go on while one process writes; NORMAL is safe with WAL (a power
        # cut may lose the last commits, never corrupt the file).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _absolute_sqlite_url(url: URL) -> URL:
    """Pin a relative path to the current directory and create its folder."""
    database = url.database or ""
    if database.startswith("file:") or url.query.get("uri"):
        return url  # a SQLite URI filename: the caller owns its meaning
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return url.set(database=str(path))


def migrations_dir() -> Path:
    """The alembic script folder, shipped inside the package (app/migrations): the same path
    in a checkout, an editable install and an installed wheel, from any working directory."""
    candidate = Path(app.__file__).resolve().parent / "migrations"
    if not (candidate / "env.py").is_file():
        raise RuntimeError(f"alembic migrations not found (looked in {candidate})")
    return candidate


def alembic_config(database_url: str) -> Config:
    """An alembic Config for `database_url` that works from any directory, without alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Config values go through ConfigParser interpolation: a %-escaped password must survive.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade_schema(database_url: str) -> None:
    """Apply every pending migration to `database_url` (alembic upgrade head). Safe across
    processes; within one process, one at a time (alembic keeps its context in globals)."""
    config = alembic_config(database_url)
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade_on, config)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    """The newest migration this code ships (alembic head)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at; None for a database never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def missing_database(exc: BaseException) -> bool:
    """True when `exc` says the database named in the URL does not exist (Postgres 3D000)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "3D000"


def _upgrade_on(connection: Connection, config: Config) -> None:
    # app/migrations/env.py runs on this connection instead of opening its own event loop.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def upgrade_head(database_url: str) -> None:
    """Synchronous `upgrade_schema`, for scripts and tools (not from inside an event loop)."""
    asyncio.run(upgrade_schema(database_url))
