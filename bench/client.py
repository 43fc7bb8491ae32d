"""The harness's HTTP side: submit runs and watch their SSE stream until the terminal event."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = ("execution.completed", "execution.failed", "execution.cancelled")


class RunFailed(RuntimeError):
    """A benchmark run did not end `completed` (the benchmark measures successes only)."""


async def run_immediate(client: httpx.AsyncClient, workflow: dict[str, Any]) -> float:
    """POST mode=immediate; seconds until the 200 with the finished execution."""
    body = {"workflow": workflow, "input": {"x": 1}, "mode": "immediate"}
    start = time.perf_counter()
    response = await client.post("/workflow/run", json=body)
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or response.json().get("status") != "completed":
        raise RunFailed(f"immediate run answered {response.status_code}: {response.text[:500]}")
    return elapsed


async def submit_queued(
    client: httpx.AsyncClient, workflow: dict[str, Any], input: dict[str, Any] | None = None
) -> str:
    """POST mode=queued; the execution id from the 202."""
    body = {"workflow": workflow, "input": input or {"x": 1}, "mode": "queued"}
    response = await client.post("/workflow/run", json=body)
    if response.status_code != 202:
        raise RunFailed(f"queued run answered {response.status_code}: {response.text[:500]}")
    execution_id: str = response.json()["executionId"]
    return execution_id


async def submit_bulk(client: httpx.AsyncClient, workflow: dict[str, Any], runs: int) -> list[str]:
    """POST /workflow/runs with `runs` queued runs; their execution ids (all must be 202)."""
    body = {"runs": [{"workflow": workflow, "input": {"x": 1}, "mode": "queued"}] * runs}
    response = await client.post("/workflow/runs", json=body)
    results = response.json().get("results", []) if response.status_code == 200 else []
    if len(results) != runs or any(r.get("httpStatus") != 202 for r in results):
        raise RunFailed(f"bulk submission answered {response.status_code}: {response.text[:500]}")
    return [r["execution"]["executionId"] for r in results]


async def wait_terminal(client: httpx.AsyncClient, execution_id: str) -> None:
    """Read the SSE stream (it replays first, so nothing is missed) until the terminal event."""
    async with client.stream("GET", f"/execution/{execution_id}/stream") as response:
        if response.status_code != 200:
            raise RunFailed(f"stream answered {response.status_code}")
        async for line in response.aiter_lines():
            if not line.startswith("event:"):
                continue
            event = line.partition(":")[2].strip()
            if event == "execution.completed":
                return
            if event in TERMINAL:
                raise RunFailed(f"execution {execution_id} ended with {event}")
    raise RunFailed(f"stream of {execution_id} ended without a terminal event")


async def run_queued(
    client: httpx.AsyncClient, workflow: dict[str, Any], input: dict[str, Any] | None = None
) -> float:
    """POST mode=queued, then the stream; seconds until `execution.completed` is seen."""
    start = time.perf_counter()
    execution_id = await submit_queued(client, workflow, input)
    await wait_terminal(client, execution_id)
    return time.perf_counter() - start


async def post_baseline(client: httpx.AsyncClient, workflow: dict[str, Any]) -> float:
    """W1's baseline request: the same body to the bare insert-and-commit endpoint."""
    body = {"workflow": workflow, "input": {"x": 1}, "mode": "immediate"}
    start = time.perf_counter()
    response = await client.post("/insert", json=body)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RunFailed(f"baseline answered {response.status_code}: {response.text[:500]}")
    return elapsed
