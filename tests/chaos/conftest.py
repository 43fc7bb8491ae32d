"""Chaos tests: real processes are killed and real servers stopped; every accepted execution
must still finish, without a completed step running twice.

`counter` is a real HTTP peer that counts each step's calls by the Idempotency-Key
`http.request` sends (`{executionId}:{nodeId}`), so a step that ran twice is seen from
outside, whatever the database says."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from arq import create_pool
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.execution.queue import ArqQueue, redis_settings
from app.store.repository import Repository
from tests.servers import run_server


class CountingPeer:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()  # calls received and not yet answered
        self.app = FastAPI()

        @self.app.post("/hit")
        async def hit(request: Request, delay_ms: int = 0) -> dict[str, int]:
            key = request.headers.get("idempotency-key", "?")
            self.in_flight[key] += 1
            try:
                await asyncio.sleep(delay_ms / 1000)
            finally:
                self.in_flight[key] -= 1
            self.hits[key] += 1  # counted when answered: a call cut off midway did not run
            return {"count": self.hits[key]}

    def calls_in_flight(self) -> set[str]:
        """The `{executionId}:{nodeId}` keys of calls the peer is answering right now."""
        return {key for key, n in list(self.in_flight.items()) if n > 0}

    def executions_in_flight(self) -> set[str]:
        return {key.split(":")[0] for key in self.calls_in_flight()}


@pytest.fixture
def counter() -> Iterator[tuple[CountingPeer, str]]:
    peer = CountingPeer()
    with run_server(peer.app) as url:
        yield peer, url


def http_chain(url: str, steps: int, delay_ms: int) -> dict[str, Any]:
    """`steps` sequential calls to the counting peer, each answered after `delay_ms`."""
    nodes: list[dict[str, Any]] = []
    for i in range(steps):
        node: dict[str, Any] = {
            "id": f"s{i}",
            "type": "http.request",
            "params": {"method": "POST", "url": f"{url}/hit?delay_ms={delay_ms}"},
        }
        if i:
            node["dependsOn"] = [f"s{i - 1}"]
        nodes.append(node)
    return {"name": "chaos", "nodes": nodes}


@pytest.fixture
async def enqueue(settings: Settings) -> AsyncIterator[Any]:
    pool = await create_pool(redis_settings(settings))
    queue = ArqQueue(pool, settings.queue_name)
    yield queue.enqueue
    await pool.aclose()


async def step_statuses(repo: Repository, ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    return {i: {s.node_id: s.status for s in (await repo.get_execution(i)).steps} for i in ids}


async def wait_all(repo: Repository, ids: list[UUID], status: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        states = [(await repo.get_execution(i, steps=False)).status for i in ids]
        if all(s == status for s in states):
            return
        if loop.time() > deadline:
            raise AssertionError(f"not all {status} after {timeout_s} s: {Counter(states)}")
        await asyncio.sleep(0.1)


async def resumed_after(engine: AsyncEngine, ids: list[UUID], since: datetime) -> list[float]:
    """Seconds from `since` to each execution's first `execution.started` after it."""
    query = text(
        "SELECT execution_id, min(created_at) FROM execution_events "
        "WHERE type = 'execution.started' AND created_at > :since "
        "AND execution_id = ANY(:ids) GROUP BY execution_id"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query, {"since": since, "ids": ids})).all()
    return [(at - since).total_seconds() for _, at in rows]


def report(label: str, delays: list[float]) -> str:
    median = statistics.median(delays)
    line = f"{label}: {len(delays)} resumed; from the signal: median {median:.2f} s, max "
    line += f"{max(delays):.2f} s"
    print(line)
    return line
