"""Real arq workers for tests: in this process (a task) or as a separate OS process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from arq.worker import Worker
from redis import Redis

from app.config import Settings
from worker.main import worker_options

# A cold start of an API or worker process; on a 2-core box that other test runs share it
# can take over 30 s.
STARTUP_TIMEOUT_S = 90


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Worker]:
    """An arq Worker polling the test queue from a task of the current event loop."""
    options = {**worker_options(settings), "handle_signals": False, **overrides}
    worker = Worker(**options)
    task = asyncio.create_task(worker.async_run())
    try:
        # Let startup finish (the runtime connects to Postgres and Redis).
        for _ in range(200):
            if "runtime" in worker.ctx or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield worker
    finally:
        # Let running jobs finish (arq cancels them mid-write otherwise), then stop polling.
        for _ in range(500):
            if not any(not t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


def settings_env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "TURNOUT_QUEUE_NAME": settings.queue_name,
        "TURNOUT_KEY_PREFIX": settings.key_prefix,
        "TURNOUT_HTTP_ALLOW_PRIVATE": str(settings.http_allow_private).lower(),
        "TURNOUT_LEASE_MS": str(settings.lease_ms),
        "TURNOUT_HEARTBEAT_MS": str(settings.heartbeat_ms),
        "TURNOUT_DURABLE_DELAY_THRESHOLD_MS": str(settings.durable_delay_threshold_ms),
        "TURNOUT_LOG_JSON": "true",
    }
    return env


@contextlib.contextmanager
def worker_process(settings: Settings, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`arq worker.main.WorkerSettings` in its own OS process, on the test's queue, ready
    (its health-check key written) when this yields. Its log goes to a temporary file,
    printed if the test fails to stop it."""
    key = f"{settings.queue_name}:health-check"
    with (
        tempfile.NamedTemporaryFile(prefix="turnout-worker-", suffix=".log") as log,
        contextlib.closing(Redis.from_url(settings.redis_url or "")) as health,
    ):
        health.delete(key)
        proc = subprocess.Popen(
            [sys.executable, "-m", "arq", "worker.main.WorkerSettings"],
            env={**settings_env(settings), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not health.exists(key):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start:\n{_tail(log.name)}")
                time.sleep(0.02)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _tail(path: str, lines: int = 40) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


@contextlib.contextmanager
def api_process(settings: Settings, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`uvicorn app.main:app` in its own OS process (signals reach it as in production);
    yields it and its base URL once `/healthz` answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],
        env={**settings_env(settings), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start (exit {proc.returncode})")
            time.sleep(0.05)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
