"""Redis restarted empty, Postgres stopped under load: 503s meanwhile, nothing accepted lost.

Each test runs its own throwaway server (see tests/support/throwaway.py), never the
machine's shared ones."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from arq import create_pool
from sqlalchemy import text

from app.config import Settings
from app.engine.status import Status
from app.errors import ServiceUnavailable
from app.execution.manager import RunRequest
from app.execution.queue import ArqQueue, redis_settings
from app.runtime import build_runtime
from app.store.database import make_engine, upgrade_schema
from app.store.records import ExecutionFilter
from app.store.repository import Repository
from tests.chaos.conftest import wait_all
from tests.support.executions import insert_pending, wait_status, wait_until
from tests.support.prereq import missing
from tests.support.throwaway import ThrowawayPostgres, ThrowawayRedis, postgres_bin
from tests.support.workers import api_process, worker_process

TWO_STEPS = {
    "nodes": [
        {"id": "a", "type": "transform", "params": {"v": 1}},
        {"id": "b", "type": "delay", "params": {"ms": 100}, "dependsOn": ["a"]},
    ]
}


@pytest.fixture
async def throwaway_pg() -> AsyncIterator[ThrowawayPostgres]:
    if postgres_bin() is None:
        missing("the Postgres server binaries", "apt-get install postgresql; scripts/test does")
    server = ThrowawayPostgres()
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        await upgrade_schema(server.url())
        yield server
    finally:
        await asyncio.to_thread(server.remove)


async def test_queued_runs_survive_a_redis_restart(
    settings: Settings, throwaway_redis: ThrowawayRedis, engine: Any
) -> None:
    settings = settings.model_copy(
        update={"redis_url": throwaway_redis.url, "reconcile_pending_grace_ms": 500}
    )
    repo = Repository(engine)
    pool = await create_pool(redis_settings(settings))
    queue = ArqQueue(pool, settings.queue_name)
    # The queue works on this server before the restart: a job enqueued there runs.
    first = await insert_pending(repo, TWO_STEPS)
    await queue.enqueue(first)
    with worker_process(settings):
        await wait_status(repo, first, Status.COMPLETED, timeout_s=30)
    ids = [await insert_pending(repo, TWO_STEPS) for _ in range(10)]
    for execution_id in ids:
        await queue.enqueue(execution_id)
    assert await pool.zcard(settings.queue_name) == 10
    await pool.aclose()

    throwaway_redis.stop()  # no persistence: every queued job is gone
    throwaway_redis.start()
    with worker_process(settings, TURNOUT_RECONCILE_PENDING_GRACE_MS="500"):
        await wait_all(repo, ids, Status.COMPLETED, timeout_s=30)


async def test_postgres_down_gives_503_and_every_accepted_run_completes(
    settings: Settings, throwaway_pg: ThrowawayPostgres
) -> None:
    settings = settings.model_copy(update={"database_url": throwaway_pg.url()})
    body = {"workflow": TWO_STEPS, "input": {}, "mode": "queued"}
    accepted: list[UUID] = []
    answers: Counter[int] = Counter()
    slowest = 0.0

    async def load(client: httpx.AsyncClient, until: float) -> None:
        nonlocal slowest
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                response = await client.post("/workflow/run", json=body)
            except httpx.HTTPError:
                answers[0] += 1
                continue
            slowest = max(slowest, time.monotonic() - start)
            answers[response.status_code] += 1
            if response.status_code == 202:
                accepted.append(UUID(response.json()["executionId"]))
            elif response.status_code == 503:
                assert response.headers.get("retry-after")
                assert response.json()["error"]["code"] == "service_unavailable"
            await asyncio.sleep(0.05)

    with worker_process(settings), api_process(settings) as (_, base):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            loader = asyncio.create_task(load(client, time.monotonic() + 9))
            await wait_until(lambda: answers[202] >= 5, "runs accepted before the outage")
            await asyncio.to_thread(throwaway_pg.stop)

            async def readiness_down() -> bool:
                ready = await client.get("/readyz")
                checks = ready.json()["checks"]
                return ready.status_code == 503 and checks["database"].startswith("down")

            await wait_until(readiness_down, "/readyz 503 with the database down")
            await wait_until(lambda: answers[503] >= 5, "503s during the outage")
            await asyncio.to_thread(throwaway_pg.start)
            await loader
            assert answers[503] > 0, answers  # the outage was seen, as 503s
            assert set(answers) <= {202, 503}, answers  # never a 500, never a dropped request
            assert slowest < 10  # and never a hung one
            engine = make_engine(settings.database_url)
            try:
                repo = Repository(engine)
                await wait_all(repo, accepted, Status.COMPLETED, timeout_s=60)
                async with engine.connect() as conn:
                    total = (
                        await conn.execute(text("SELECT count(*) FROM workflow_executions"))
                    ).scalar_one()
            finally:
                with contextlib.suppress(Exception):
                    await engine.dispose()
    assert total == len(accepted)  # nothing half-created by the failed submissions
    print(f"Postgres outage: {dict(answers)}; {len(accepted)} accepted, all completed")


async def test_a_pure_immediate_run_with_postgres_down_is_refused_and_not_stored(
    settings: Settings, throwaway_pg: ThrowawayPostgres
) -> None:
    """Written once at rest (app/execution/deferred.py): its steps run, its only write
    fails, and the answer says to send it again. Nothing was accepted, nothing is left."""
    settings = settings.model_copy(
        update={"database_url": throwaway_pg.url(), "schedule_tick_ms": 0}
    )
    runtime = build_runtime(settings, "api")
    await runtime.start()
    workflow = {"nodes": [{"id": "a", "type": "transform", "params": {"x": 1}}]}
    try:
        done = await runtime.manager.submit(RunRequest(workflow=workflow, mode="immediate"))
        assert done.started.record.status == "completed"  # stored while the database is up
        await asyncio.to_thread(throwaway_pg.stop)
        with pytest.raises(ServiceUnavailable, match="send it again"):
            await runtime.manager.submit(RunRequest(workflow=workflow, mode="immediate"))
        await asyncio.to_thread(throwaway_pg.start)
        stored, _ = await runtime.repo.list_executions(ExecutionFilter(), limit=10, cursor=None)
        assert [r.id for r in stored] == [done.started.record.id]
    finally:
        await runtime.close()
