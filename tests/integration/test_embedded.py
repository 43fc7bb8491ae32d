"""The embedded default: SQLite file, in-process queue and events, nothing else installed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async

WORKFLOW: dict[str, Any] = {
    "nodes": [
        {"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "transform", "params": {"n": "{{ a.n + 1 }}"}},
    ],
    "output": "{{ b.n }}",
}


async def test_embedded_service_runs_both_modes_end_to_end(tmp_path: Path) -> None:
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False
    )
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        immediate = await client.post(
            "/workflow/run", json={"workflow": WORKFLOW, "input": {"n": 1}}
        )
        assert immediate.status_code == 200, immediate.text
        assert immediate.json()["result"] == 2
        assert immediate.json()["mode"] == "immediate"

        queued = await client.post(
            "/workflow/run", json={"workflow": WORKFLOW, "input": {"n": 5}, "mode": "queued"}
        )
        assert queued.status_code == 202
        execution_id = queued.json()["executionId"]
        deadline = time.monotonic() + 10
        while True:
            body = (await client.get(f"/execution/{execution_id}")).json()
            if body["status"] == "completed" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert body["status"] == "completed" and body["result"] == 6
        assert body["mode"] == "queued"

        stream = await client.get(f"/execution/{execution_id}/stream")
        types = [line[7:] for line in stream.text.splitlines() if line.startswith("event: ")]
        assert types[0] == "execution.created" and types[-1] == "execution.completed"

        listed = (await client.get("/executions", params={"mode": "queued"})).json()["items"]
        assert [i["executionId"] for i in listed] == [execution_id]
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["database"] == "ok"
    assert (tmp_path / "turnout.db").exists()
