"""Queued mode: the analyzer's choice, arq workers, priority, promotion, durable delays."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from arq import create_pool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.execution.queue import redis_settings
from app.main import create_app
from tests.servers import run_server
from tests.support.workers import running_worker, worker_process


def chain(n: int, node_type: str = "transform") -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": node_type, "params": {"i": 0}}]
    for i in range(1, n):
        nodes.append(
            {"id": f"n{i}", "type": node_type, "params": {"i": f"{{{{ n{i - 1}.i + 1 }}}}"}}
        )
    return {"name": f"chain{n}", "nodes": nodes, "output": {"last": f"{{{{ n{n - 1}.i }}}}"}}


async def wait_for_status(
    client: httpx.AsyncClient, execution_id: str, statuses: set[str], timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get(f"/execution/{execution_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"still {body['status']} after {timeout}s: {body}")
        await asyncio.sleep(0.02)


async def step_starts(engine: AsyncEngine, execution_id: str) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT data->>'stepKey', count(*) FROM execution_events "
                "WHERE execution_id = :id AND type = 'step.started' GROUP BY 1"
            ),
            {"id": uuid.UUID(execution_id)},
        )
        return {key: count for key, count in rows}


@pytest.mark.parametrize(
    ("workflow", "mode", "reason"),
    [
        (chain(3), "immediate", "simple"),
        (chain(10), "immediate", "simple"),
        (chain(11), "queued", "11 nodes"),
        (
            {"nodes": [{"id": "d", "type": "delay", "params": {"ms": 31_000}}]},
            "queued",
            "estimated",
        ),
        (
            {
                "nodes": [
                    {
                        "id": "h",
                        "type": "human.input",
                        "params": {"prompt": "ok?", "schema": {"type": "object"}},
                    }
                ]
            },
            "queued",
            "human input",
        ),
        (
            {
                "nodes": [
                    {
                        "id": "loop",
                        "type": "foreach",
                        "params": {
                            "items": [1, 2],
                            "node": {
                                "type": "http.request",
                                "params": {"url": "http://127.0.0.1:9/x"},
                            },
                        },
                    }
                ]
            },
            "queued",
            "external",
        ),
    ],
)
async def test_auto_mode_picks_track_for_the_right_reason(
    client: httpx.AsyncClient, workflow: dict[str, Any], mode: str, reason: str
) -> None:
    response = await client.post("/workflow/run", json={"workflow": workflow})
    assert response.status_code == (200 if mode == "immediate" else 202), response.text
    body = response.json()
    assert body["mode"] == mode
    assert any(reason in r for r in body["complexity"]["reasons"]), body["complexity"]


async def test_queued_run_completes_on_worker(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post("/workflow/run", json={"workflow": chain(3), "mode": "queued"})
    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) >= {"executionId", "status", "complexity", "mode"}
    assert accepted["status"] == "pending" and accepted["mode"] == "queued"
    async with running_worker(settings):
        body = await wait_for_status(client, accepted["executionId"], {"completed", "failed"})
    assert body["status"] == "completed"
    assert body["result"] == {"last": 2}
    assert [s["status"] for s in body["steps"]] == ["completed"] * 3


async def test_priority_runs_first_from_a_backlog(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ids = []
    for priority in (0, 0, 0, 5, 0):
        response = await client.post(
            "/workflow/run",
            json={"workflow": chain(1), "mode": "queued", "options": {"priority": priority}},
        )
        ids.append(response.json()["executionId"])
    async with running_worker(settings, max_jobs=1):
        bodies = [await wait_for_status(client, i, {"completed"}) for i in ids]
    order = sorted(range(5), key=lambda i: bodies[i]["startedAt"])
    assert order[0] == 3  # the priority-5 run, enqueued fourth, started first
    assert order[1:] == [0, 1, 2, 4]  # the rest in arrival order


async def test_idempotency_key_for_queued_runs(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": f"q-{uuid.uuid4()}"}
    body = {"workflow": chain(2), "mode": "queued"}
    first = await client.post("/workflow/run", json=body, headers=headers)
    second = await client.post("/workflow/run", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["executionId"] == second.json()["executionId"]
    listed = (await client.get("/executions")).json()["items"]
    assert len(listed) == 1


@pytest.fixture
def short_budget_api(settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    quick = settings.model_copy(update={"immediate_budget_ms": 300})
    with run_server(create_app(quick)) as url:
        yield url


async def test_promotion_hands_long_immediate_run_to_queue(
    short_budget_api: str, settings: Settings, engine: AsyncEngine
) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "transform", "params": {"v": 1}},
            {"id": "wait", "type": "delay", "params": {"ms": 800}, "dependsOn": ["a"]},
            {
                "id": "b",
                "type": "transform",
                "params": {"v": "{{ a.v + 1 }}"},
                "dependsOn": ["wait"],
            },
        ],
        "output": "{{ b.v }}",
    }
    async with httpx.AsyncClient(base_url=short_budget_api, timeout=30) as client:
        started = time.monotonic()
        response = await client.post(
            "/workflow/run", json={"workflow": workflow, "mode": "immediate"}
        )
        assert time.monotonic() - started < 0.8
        assert response.status_code == 202, response.text
        execution_id = response.json()["executionId"]
        async with running_worker(settings):
            body = await wait_for_status(client, execution_id, {"completed", "failed"})
    assert body["status"] == "completed" and body["result"] == 2
    assert body["mode"] == "queued"
    starts = await step_starts(engine, execution_id)
    assert starts["a"] == 1  # completed before promotion: never re-run
    async with engine.connect() as conn:
        types = [
            r[0]
            for r in await conn.execute(
                text("SELECT type FROM execution_events WHERE execution_id = :id ORDER BY seq"),
                {"id": uuid.UUID(execution_id)},
            )
        ]
    assert "execution.promoted" in types
    assert types[-1] == "execution.completed"


async def test_durable_delay_frees_the_worker(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    slow = {
        "nodes": [
            {"id": "wait", "type": "delay", "params": {"ms": 1500}},
            {"id": "after", "type": "transform", "params": {"v": "done"}, "dependsOn": ["wait"]},
        ]
    }
    first = (await client.post("/workflow/run", json={"workflow": slow, "mode": "queued"})).json()
    durable = settings.model_copy(update={"durable_delay_threshold_ms": 200})
    async with running_worker(durable, max_jobs=1, ctx={"settings": durable}):
        waiting = await wait_for_status(client, first["executionId"], {"waiting"}, timeout=5)
        assert waiting["wakeAt"] is not None
        quick = await client.post("/workflow/run", json={"workflow": chain(2), "mode": "queued"})
        done = await wait_for_status(client, quick.json()["executionId"], {"completed"}, timeout=5)
        still = (await client.get(f"/execution/{first['executionId']}")).json()
        assert still["status"] == "waiting"  # the one-job worker ran another run meanwhile
        finished = await wait_for_status(client, first["executionId"], {"completed"}, timeout=5)
    assert done["status"] == "completed"
    assert finished["completedAt"] > done["completedAt"]


async def test_two_worker_processes_never_run_an_execution_twice(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    ids = []
    for _ in range(20):
        response = await client.post("/workflow/run", json={"workflow": chain(4), "mode": "queued"})
        ids.append(response.json()["executionId"])
    # Deliver every job a second time, as a crashed-and-retried enqueue would.
    pool = await create_pool(redis_settings(settings))
    for execution_id in ids:
        await pool.enqueue_job(
            "run_execution",
            execution_id,
            _queue_name=settings.queue_name,
            _job_id=f"dup-{execution_id}",
        )
    await pool.aclose()
    with worker_process(settings), worker_process(settings):
        for execution_id in ids:
            body = await wait_for_status(client, execution_id, {"completed"}, timeout=30)
            assert body["result"] == {"last": 3}
    for execution_id in ids:
        assert await step_starts(engine, execution_id) == {f"n{i}": 1 for i in range(4)}
