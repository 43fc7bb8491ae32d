"""Redis unreachable: queued submissions are still accepted, and run once Redis is back."""

from __future__ import annotations

import asyncio
import time

import httpx

from app.config import Settings
from app.main import create_app
from tests.servers import run_server
from tests.support.throwaway import ThrowawayRedis
from tests.support.workers import running_worker

QUEUED = {
    "workflow": {"nodes": [{"id": "a", "type": "transform", "params": {"v": 1}}]},
    "input": {},
    "mode": "queued",
}


async def test_submissions_while_redis_is_down_run_when_it_returns(
    settings: Settings, throwaway_redis: ThrowawayRedis
) -> None:
    settings = settings.model_copy(
        update={"redis_url": throwaway_redis.url, "reconcile_pending_grace_ms": 500}
    )
    with run_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            throwaway_redis.stop()
            start = time.monotonic()
            accepted = [await client.post("/workflow/run", json=QUEUED) for _ in range(3)]
            elapsed = time.monotonic() - start
            assert [r.status_code for r in accepted] == [202] * 3, accepted[0].text
            assert elapsed < 10
            ids = [r.json()["executionId"] for r in accepted]
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "ok"
            assert ready.json()["checks"]["redis"].startswith("down")

            throwaway_redis.start()  # back, and empty
            async with running_worker(settings):
                for _ in range(500):
                    states = [(await client.get(f"/execution/{i}")).json()["status"] for i in ids]
                    if states == ["completed"] * 3:
                        break
                    await asyncio.sleep(0.02)
            assert states == ["completed"] * 3
            assert (await client.get("/readyz")).status_code == 200
