"""Schedules in the embedded default: a SQLite file and the in-process queue."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from app.execution.scheduler import AUTO_START_GRACE
from app.main import create_app
from app.runtime import build_runtime
from app.store.database import make_engine
from app.store.schedules import ScheduleStore
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async

WORKFLOW = {
    "name": "tick",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}}],
}


async def test_embedded_schedule_fires_every_slot_once_and_runs_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
    settings = IsolatedSettings(DATABASE_URL=url, log_json=False, schedule_tick_ms=100)
    async with (
        run_server_async(create_app(settings)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        assert (await client.post("/workflows", json=WORKFLOW)).status_code == 201
        for mode in ("queued", "immediate"):
            body = {"workflow": "tick", "everyMs": 1000, "input": {"n": 2}, "mode": mode}
            made = (await client.post("/schedules", json=body)).json()
            await asyncio.sleep(3.5)
            await client.patch(f"/schedules/{made['id']}", json={"paused": True})
            await asyncio.sleep(0.5)
            one = (await client.get(f"/schedules/{made['id']}")).json()
            runs = one["recentExecutions"]
            assert len(runs) >= 3 and one["fired"] == len(runs)
            assert all(r["status"] == "completed" for r in runs), runs
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT schedule_id, schedule_slot FROM workflow_executions "
                        "ORDER BY schedule_id, schedule_slot"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(rows) == len(set(rows)) >= 6
    for _, group in itertools.groupby(rows, key=lambda r: r[0]):
        slots = [datetime.fromisoformat(str(slot)) for _, slot in group]
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(slots))


async def test_embedded_auto_start_sweep_reads_the_definition_flag(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
    settings = IsolatedSettings(DATABASE_URL=url, log_json=False, schedule_tick_ms=0)
    runtime = build_runtime(settings, "api")
    await runtime.start()
    try:
        await runtime.repo.create_workflow("plain", "1", WORKFLOW)
        await runtime.repo.create_workflow("boot", "1", {**WORKFLOW, "autoStart": True})
        store = ScheduleStore(runtime.repo.engine)
        since = datetime.now(UTC) - timedelta(hours=1)
        assert await store.unstarted_auto_starts(since) == [("default", "boot", "1")]
        assert await store.unstarted_auto_starts(since, since) == []  # registered after
        await runtime.scheduler.run_once(datetime.now(UTC) + AUTO_START_GRACE)
        assert await store.unstarted_auto_starts(since) == []
    finally:
        await runtime.close()
