"""Flow-control tests: submit over HTTP, read what ran when from the stored timestamps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.store.records import ExecutionRecord
from app.store.repository import Repository
from tests.servers import run_server


@pytest.fixture
def flow_settings(settings: Settings) -> Settings:
    # Delays of 500 ms or more are durable (the run waits, holding no slot); shorter ones run
    # in the worker (the run stays `running`, holding its slot).
    return settings.model_copy(update={"durable_delay_threshold_ms": 500})


@pytest.fixture
def flow_api(flow_settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    with run_server(create_app(flow_settings)) as url:
        yield url


def delaying(name: str, ms: int, **flow: Any) -> dict[str, Any]:
    """A workflow of one delay (and a step after it), with the given flow control."""
    return {
        "name": name,
        "nodes": [
            {"id": "wait", "type": "delay", "params": {"ms": ms}},
            {"id": "after", "type": "noop", "dependsOn": ["wait"]},
        ],
        **flow,
    }


async def submit(
    client: httpx.AsyncClient, workflow: dict[str, Any], input_value: Any, mode: str = "queued"
) -> dict[str, Any]:
    answer = await client.post(
        "/workflow/run", json={"workflow": workflow, "input": input_value, "mode": mode}
    )
    assert answer.status_code in (200, 202), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def settled(
    repo: Repository, ids: Sequence[UUID], *statuses: str, timeout_s: float = 60
) -> list[ExecutionRecord]:
    """Every execution once it has one of `statuses` (default: any terminal one)."""
    wanted = statuses or ("completed", "failed", "cancelled")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        records = [await repo.get_execution(i) for i in ids]
        if all(r.status in wanted for r in records):
            return records
        if loop.time() > deadline:
            left = {str(r.id): r.status for r in records if r.status not in wanted}
            raise AssertionError(f"not all {wanted} after {timeout_s} s: {left}")
        await asyncio.sleep(0.05)


def most_at_once(intervals: Sequence[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one instant (an end and a start at the same instant do
    not overlap: the slot was released before it was taken)."""
    edges = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda edge: (edge[0], edge[1]),
    )
    most = current = 0
    for _, change in edges:
        current += change
        most = max(most, current)
    return most


def run_interval(record: ExecutionRecord) -> tuple[datetime, datetime]:
    assert record.started_at is not None and record.completed_at is not None, record.status
    return record.started_at, record.completed_at


def chain(name: str, *delays: int, **flow: Any) -> dict[str, Any]:
    """A workflow of delays one after another (each under 500 ms runs in the worker)."""
    nodes: list[dict[str, Any]] = []
    for i, ms in enumerate(delays):
        node: dict[str, Any] = {"id": f"d{i}", "type": "delay", "params": {"ms": ms}}
        if i:
            node["dependsOn"] = [f"d{i - 1}"]
        nodes.append(node)
    return {"name": name, "nodes": nodes, **flow}
