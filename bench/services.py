"""What the harness starts: a throwaway database, a Redis namespace, API and worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.execution.queue import purge_namespace
from app.store.database import make_engine, upgrade_schema
from bench.nodes import PLUGIN

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
STARTUP_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    """A process the harness started did not come up (its log tail is in the message)."""


@dataclass
class Namespace:
    """One run's database and Redis names, so concurrent runs never share anything."""

    pg_admin_url: str
    redis_url: str
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def database(self) -> str:
        return f"turnout_bench_{self.token}"

    @property
    def database_url(self) -> str:
        url = make_url(self.pg_admin_url).set(database=self.database)
        return url.render_as_string(hide_password=False)

    @property
    def key_prefix(self) -> str:
        return f"turnout_bench_{self.token}"

    @property
    def queue_name(self) -> str:
        return f"{self.key_prefix}:queue"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every API and worker process of this run."""
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TURNOUT_QUEUE_NAME": self.queue_name,
            "TURNOUT_KEY_PREFIX": self.key_prefix,
            "TURNOUT_LOG_LEVEL": "WARNING",
            "TURNOUT_PLUGINS": PLUGIN,  # bench.fib, for the harness's own processes only
            "PYTHONUNBUFFERED": "1",
            **extra,
        }


async def _admin(url: str, statement: str) -> None:
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def bench_database(ns: Namespace) -> AsyncIterator[str]:
    """CREATE DATABASE, migrate it to head, yield its URL; then DROP it and delete the
    namespace's Redis keys (even after a failure: every bench leaves nothing behind)."""
    await _admin(ns.pg_admin_url, f'CREATE DATABASE "{ns.database}"')
    try:
        await upgrade_schema(ns.database_url)
        yield ns.database_url
    finally:
        try:
            await _admin(ns.pg_admin_url, f'DROP DATABASE IF EXISTS "{ns.database}" WITH (FORCE)')
        finally:
            await clear_redis(ns)


async def clear_redis(ns: Namespace) -> None:
    """Delete every key of this run's namespace (queue, health check, counters), and arq's
    keys of the jobs left in its queues (W4's unused fill, a stopped worker's backlog)."""
    redis = Redis.from_url(ns.redis_url)
    try:
        await purge_namespace(redis, ns.key_prefix)
    finally:
        await redis.aclose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A child process whose output goes to a log file, ended by its own pid on close."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv), env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=Path.cwd()
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: uvicorn and arq shut down gracefully
            deadline = time.monotonic() + timeout_s
            while self.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Services:
    """The processes of one benchmark run, stopped in reverse order by `close`."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.logdir = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
        self.processes: list[Process] = []

    async def start_api(
        self, name: str = "api", app: str = "app.main:app", env: dict[str, str] | None = None
    ) -> tuple[Process, str]:
        """A uvicorn process serving `app` on a free port; returns it and its base URL."""
        port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        proc = Process(name, argv, env or self.ns.env(), self.logdir)
        self.processes.append(proc)
        base = f"http://127.0.0.1:{port}"
        await _wait_http(proc, f"{base}/healthz")
        return proc, base

    async def start_worker(
        self,
        name: str = "worker",
        settings: str = "worker.main.WorkerSettings",
        health_key: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Process:
        """`python -m arq SETTINGS`; ready once it wrote its health-check key (after startup)."""
        key = health_key or f"{self.ns.queue_name}:health-check"
        redis = Redis.from_url(self.ns.redis_url)
        try:
            await redis.delete(key)
            argv = [sys.executable, "-m", "arq", settings]
            proc = Process(name, argv, env or self.ns.env(), self.logdir)
            self.processes.append(proc)
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not await redis.exists(key):
                proc.check_alive()
                if time.monotonic() > deadline:
                    raise ServiceError(f"{name} not ready in {STARTUP_TIMEOUT_S} s:\n{proc.tail()}")
                await asyncio.sleep(0.05)
        finally:
            await redis.aclose()
        return proc

    async def stop(self, proc: Process) -> None:
        await proc.stop()
        self.processes.remove(proc)

    async def close(self) -> None:
        for proc in reversed(self.processes):
            await proc.stop()
        self.processes.clear()


async def _wait_http(proc: Process, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            proc.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                message = f"{proc.name} not ready in {STARTUP_TIMEOUT_S} s:\n{proc.tail()}"
                raise ServiceError(message)
            await asyncio.sleep(0.05)
