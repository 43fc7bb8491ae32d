"""Workflows and helpers the composition tests share."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

CHILD = {
    "name": "child",
    "version": "1",
    "nodes": [{"id": "double", "type": "transform", "params": {"n": "{{ input.n * 2 }}"}}],
    "output": {"doubled": "{{ double.n }}"},
}

FAILING_CHILD = {
    "name": "flaky",
    "version": "1",
    "nodes": [{"id": "boom", "type": "fail", "params": {"message": "child broke"}}],
}

SLOW_CHILD = {
    "name": "slow",
    "version": "1",
    "nodes": [{"id": "ask", "type": "human.input", "params": {"prompt": "go on?"}}],
}


def parent(child: str, *, retry: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "call",
        "type": "workflow",
        "params": {"workflow": child, "input": {"n": "{{ input.n }}"}},
    }
    if retry is not None:
        node["retry"] = retry
    return {
        "name": f"parent-of-{child}",
        "nodes": [node, {"id": "after", "type": "transform", "params": {"got": "{{ call }}"}}],
        "output": "{{ after.got }}",
    }


async def register(client: httpx.AsyncClient, *workflows: dict[str, Any]) -> None:
    for workflow in workflows:
        answer = await client.post("/workflows", json=workflow)
        assert answer.status_code in (200, 201), answer.text


async def wait_for(
    client: httpx.AsyncClient, execution_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/execution/{execution_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"still {body['status']} after {timeout}s: {body}")
        await asyncio.sleep(0.05)


async def start(client: httpx.AsyncClient, workflow: dict[str, Any], n: int = 21) -> str:
    answer = await client.post("/workflow/run", json={"workflow": workflow, "input": {"n": n}})
    assert answer.status_code in (200, 202), answer.text
    execution_id: str = answer.json()["executionId"]
    return execution_id
