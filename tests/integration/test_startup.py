"""Starting against dependencies that are not ready: Redis down, a schema behind, a database
that does not exist. Each is a clear answer, never a 500 or a traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.config import Settings
from app.main import create_app
from app.store.database import upgrade_schema
from tests.servers import run_server
from tests.support.throwaway import ThrowawayRedis
from tests.support.workers import running_worker

QUEUED = {
    "workflow": {"nodes": [{"id": "a", "type": "transform", "params": {"v": 1}}]},
    "mode": "queued",
}


async def test_api_starts_while_redis_is_down_and_queued_runs_wait_for_it(
    settings: Settings, throwaway_redis: ThrowawayRedis
) -> None:
    settings = settings.model_copy(
        update={"redis_url": throwaway_redis.url, "reconcile_pending_grace_ms": 500}
    )
    throwaway_redis.stop()
    started = time.monotonic()
    with run_server(create_app(settings)) as url:
        startup_s = time.monotonic() - started
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            accepted = await client.post("/workflow/run", json=QUEUED)
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["status"] == "pending"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("down")

            throwaway_redis.start()
            async with running_worker(settings):
                execution_id = accepted.json()["executionId"]
                deadline = time.monotonic() + 15
                while (await client.get(f"/execution/{execution_id}")).json()[
                    "status"
                ] != "completed":
                    assert time.monotonic() < deadline, "the pending run never ran"
                    await asyncio.sleep(0.05)
            assert (await client.get("/readyz")).status_code == 200
    assert startup_s < 5, startup_s  # no wait for arq's connection retries


async def test_unmigrated_database_is_not_ready_and_runs_answer_503_until_migrated(
    settings: Settings, empty_pg_url: str
) -> None:
    settings = settings.model_copy(update={"database_url": empty_pg_url, "redis_url": None})
    with run_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "ok"
            assert "turnout migrate" in ready.json()["checks"]["schema"]
            for response in (
                await client.post("/workflow/run", json=QUEUED),
                await client.get("/executions"),
            ):
                assert response.status_code == 503, response.text
                error = response.json()["error"]
                assert error["code"] == "schema_not_migrated"
                assert "run `turnout migrate`" in error["message"]

            await upgrade_schema(empty_pg_url)
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["schema"] == "ok"
            accepted = await client.post("/workflow/run", json=QUEUED)
            assert accepted.status_code == 202, accepted.text


def test_serve_on_a_database_that_does_not_exist_exits_with_one_clear_line(
    settings: Settings,
) -> None:
    url = settings.database_url.rsplit("/", 1)[0] + "/turnout_no_such_database"
    env = {**os.environ, "DATABASE_URL": url, "TURNOUT_LOG_JSON": "false"}
    env.pop("REDIS_URL", None)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "turnout"), "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "database 'turnout_no_such_database' does not exist" in output
    assert "turnout migrate" in output
    assert "Traceback" not in output
