"""`python -m bench.composition`: wall time of a parent run with one child workflow, and of
an event waking a waiting run, on the embedded default (SQLite, in-process queue)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx

from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async

RUNS = 30
CHILD = {
    "name": "child",
    "version": "1",
    "nodes": [{"id": "d", "type": "transform", "params": {"n": "{{ input.n }}"}}],
}
PARENT = {
    "nodes": [{"id": "c", "type": "workflow", "params": {"workflow": "child", "input": {"n": 1}}}]
}
WAITER = {
    "nodes": [
        {
            "id": "e",
            "type": "wait.event",
            "params": {"name": "go", "match": "event.data == input.k"},
        }
    ]
}


async def _until(client: httpx.AsyncClient, execution_id: str, statuses: set[str]) -> None:
    while True:
        status = (await client.get(f"/execution/{execution_id}")).json()["status"]
        if status in statuses:
            return
        await asyncio.sleep(0.005)


async def _start(client: httpx.AsyncClient, workflow: dict[str, Any], input_: Any) -> str:
    answer = await client.post("/workflow/run", json={"workflow": workflow, "input": input_})
    execution_id: str = answer.json()["executionId"]
    return execution_id


async def measure() -> dict[str, list[float]]:
    folder = tempfile.mkdtemp()
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db", log_level="WARNING"
    )
    child: list[float] = []
    wake: list[float] = []
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        await client.post("/workflows", json=CHILD)
        for _ in range(RUNS):
            started = time.perf_counter()
            await _until(client, await _start(client, PARENT, {}), {"completed"})
            child.append((time.perf_counter() - started) * 1000)
        for k in range(RUNS):
            execution_id = await _start(client, WAITER, {"k": k})
            await _until(client, execution_id, {"waiting"})
            started = time.perf_counter()
            await client.post("/events", json={"name": "go", "data": k})
            await _until(client, execution_id, {"completed"})
            wake.append((time.perf_counter() - started) * 1000)
    return {"parent with a child, submit to completed": child, "event sent to waiter done": wake}


def main() -> None:
    for name, values in asyncio.run(measure()).items():
        values.sort()
        p90 = values[int(len(values) * 0.9)]
        median = statistics.median(values)
        print(f"{name}: median {median:.1f} ms, p90 {p90:.1f} ms (n={len(values)})")


if __name__ == "__main__":
    main()
