"""Control verbs over HTTP: cancel, pause/resume, human input, retry, and every 409."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.api.test_queued_runs import chain, step_starts, wait_for_status
from tests.servers import run_server
from tests.support.workers import running_worker, worker_process

peer = FastAPI()
hits: Counter[str] = Counter()
slow_disconnected: list[float] = []


@peer.get("/count/{name}")
async def count(name: str) -> dict[str, Any]:
    hits[name] += 1
    return {"name": name, "hits": hits[name]}


@peer.get("/flaky/{name}")
async def flaky(name: str) -> JSONResponse:
    hits[name] += 1
    if hits[name] == 1:
        return JSONResponse({"error": "first call fails"}, status_code=500)
    return JSONResponse({"ok": True, "hits": hits[name]})


@peer.get("/slow")
async def slow(request: Request) -> dict[str, Any]:
    hits["slow"] += 1
    for _ in range(3000):  # up to 30 s, watching for the caller to hang up
        if await request.is_disconnected():
            slow_disconnected.append(time.monotonic())
            break
        await asyncio.sleep(0.01)
    return {"slow": True}


@pytest.fixture(scope="module")
def peer_url() -> Iterator[str]:
    with run_server(peer) as url:
        yield url


@pytest.fixture(autouse=True)
def _reset() -> None:
    hits.clear()
    slow_disconnected.clear()


def http_node(node_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "http.request", "params": {"url": url}, **extra}


async def submit(
    client: httpx.AsyncClient, workflow: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post("/workflow/run", json={"workflow": workflow, **body})
    assert response.status_code in (200, 202), response.text
    result: dict[str, Any] = response.json()
    return result


async def event_types(engine: AsyncEngine, execution_id: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT type FROM execution_events WHERE execution_id = :id ORDER BY seq"),
            {"id": uuid.UUID(execution_id)},
        )
        return [r[0] for r in rows]


async def test_cancel_pending_is_immediate_and_idempotent(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    accepted = await submit(client, chain(2), mode="queued")
    execution_id = accepted["executionId"]
    first = await client.post(f"/execution/{execution_id}/cancel", headers={"X-Actor": "ana"})
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled" and first.json()["changed"] is True
    again = await client.delete(f"/execution/{execution_id}")
    assert again.status_code == 200 and again.json()["changed"] is False
    types = await event_types(engine, execution_id)
    assert types == ["execution.created", "execution.cancelled"]


async def test_cancel_stops_running_http_step_in_worker_process(
    client: httpx.AsyncClient, settings: Settings, peer_url: str
) -> None:
    workflow = {"nodes": [http_node("wait", f"{peer_url}/slow", timeout=60_000)]}
    with worker_process(settings):
        accepted = await submit(client, workflow, mode="queued")
        execution_id = accepted["executionId"]
        deadline = time.monotonic() + 15
        while hits["slow"] == 0:
            assert time.monotonic() < deadline, "the worker never called the slow server"
            await asyncio.sleep(0.02)
        asked = time.monotonic()
        response = await client.post(f"/execution/{execution_id}/cancel")
        body = await wait_for_status(client, execution_id, {"cancelled"}, timeout=5)
        stopped = time.monotonic() - asked
    assert response.status_code == 200
    assert stopped < 1.0, stopped
    assert body["steps"][0]["status"] == "cancelled"
    await asyncio.sleep(0.3)
    assert slow_disconnected, "the outgoing HTTP request was not aborted"


async def test_pause_at_step_boundary_then_resume_reruns_nothing(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "delay", "params": {"ms": 400}},
            {"id": "b", "type": "transform", "params": {"v": 1}, "dependsOn": ["a"]},
            {"id": "c", "type": "transform", "params": {"v": "{{ b.v + 1 }}"}},
        ],
        "output": "{{ c.v }}",
    }
    async with running_worker(settings):
        accepted = await submit(client, workflow, mode="queued")
        execution_id = accepted["executionId"]
        await wait_for_status(client, execution_id, {"running"})
        paused = await client.post(f"/execution/{execution_id}/pause")
        assert paused.status_code == 200
        body = await wait_for_status(client, execution_id, {"paused"})
        states = {s["nodeId"]: s["status"] for s in body["steps"]}
        assert states["a"] == "completed"  # the running step finished
        assert "b" not in states or states["b"] == "pending"
        resumed = await client.post(f"/execution/{execution_id}/resume")
        assert resumed.status_code == 200
        done = await wait_for_status(client, execution_id, {"completed"})
    assert done["result"] == 2
    assert await step_starts(engine, execution_id) == {"a": 1, "b": 1, "c": 1}
    types = await event_types(engine, execution_id)
    assert "execution.paused" in types and "execution.resumed" in types


async def test_pause_with_abort_reruns_the_interrupted_step(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    workflow = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 3000}}]}
    async with running_worker(settings):
        accepted = await submit(client, workflow, mode="queued")
        execution_id = accepted["executionId"]
        await wait_for_status(client, execution_id, {"running"})
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await client.post(f"/execution/{execution_id}/pause", params={"abort": "true"})
        await wait_for_status(client, execution_id, {"paused"})
        assert time.monotonic() - started < 1.5
        await client.post(f"/execution/{execution_id}/resume")
        done = await wait_for_status(client, execution_id, {"completed"}, timeout=10)
    assert done["steps"][0]["attempt"] == 1  # an interruption is not a failed attempt
    assert (await step_starts(engine, execution_id))["a"] == 2


HUMAN = {
    "nodes": [
        {"id": "prep", "type": "transform", "params": {"order": "{{ input.order }}"}},
        {
            "id": "approve",
            "type": "human.input",
            "params": {
                "prompt": "Approve order?",
                "schema": {
                    "type": "object",
                    "required": ["approved"],
                    "properties": {"approved": {"type": "boolean"}},
                },
            },
            "dependsOn": ["prep"],
        },
    ],
    "output": {"order": "{{ prep.order }}", "approved": "{{ approve.approved }}"},
}


@pytest.mark.parametrize("mode", ["immediate", "queued"])
async def test_human_input_in_both_modes(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine, mode: str
) -> None:
    async with running_worker(settings):
        first = await submit(client, HUMAN, mode=mode, input={"order": 7})
        execution_id = first["executionId"]
        if mode == "immediate":
            assert first["status"] == "waiting"  # the request answers at once
        body = await wait_for_status(client, execution_id, {"waiting"})
        assert body["status"] == "waiting"
        bad = await client.post(
            f"/execution/{execution_id}/input",
            json={"nodeId": "approve", "data": {"approved": "yes"}},
        )
        assert bad.status_code == 422
        assert "boolean" in bad.json()["error"]["details"][0]["message"]
        wrong_node = await client.post(
            f"/execution/{execution_id}/input", json={"nodeId": "prep", "data": {}}
        )
        assert wrong_node.status_code == 409
        good = await client.post(
            f"/execution/{execution_id}/input",
            json={"nodeId": "approve", "data": {"approved": True}},
            headers={"X-Actor": "reviewer@example.com"},
        )
        assert good.status_code == 200, good.text
        done = await wait_for_status(client, execution_id, {"completed"})
    assert done["result"] == {"order": 7, "approved": True}
    assert await step_starts(engine, execution_id) == {"prep": 1, "approve": 2}
    waiting_events = [
        t for t in await event_types(engine, execution_id) if t == "execution.waiting"
    ]
    assert len(waiting_events) == 1


async def test_retry_from_failed_keeps_completed_steps_and_from_start_does_not(
    client: httpx.AsyncClient, settings: Settings, peer_url: str
) -> None:
    workflow = {
        "nodes": [
            http_node("a", f"{peer_url}/count/a"),
            http_node("b", f"{peer_url}/flaky/b", dependsOn=["a"]),
        ],
        "output": "{{ b.body.hits }}",
    }
    first = await submit(client, workflow, mode="immediate")
    assert first["status"] == "failed"
    assert hits == {"a": 1, "b": 1}
    async with running_worker(settings):
        retried = await client.post(f"/execution/{first['executionId']}/retry", json={})
        assert retried.status_code == 200, retried.text
        assert retried.json()["attempt"] == 2
        done = await wait_for_status(client, first["executionId"], {"completed", "failed"})
        assert done["status"] == "completed" and done["result"] == 2
        assert hits == {"a": 1, "b": 2}  # a kept its output, b ran again
        assert done["metadata"]["attempts"][0]["status"] == "failed"
        again = await client.post(
            f"/execution/{first['executionId']}/retry", json={"from": "start"}
        )
        assert again.status_code == 409  # completed: nothing to retry

        second = await submit(
            client,
            {
                **workflow,
                "nodes": [
                    http_node("a", f"{peer_url}/count/a2"),
                    {"id": "b", "type": "fail", "params": {"message": "x"}, "dependsOn": ["a"]},
                ],
            },
            mode="immediate",
        )
        assert second["status"] == "failed"
        await client.post(f"/execution/{second['executionId']}/retry", json={"from": "start"})
        redo = await wait_for_status(client, second["executionId"], {"failed"}, timeout=10)
        assert redo["attempt"] == 2
    assert hits["a2"] == 2  # from start: every step ran again


async def test_forbidden_transitions_are_409_naming_status(client: httpx.AsyncClient) -> None:
    done = await submit(client, chain(1), mode="immediate")
    execution_id = done["executionId"]
    for verb, body in [
        ("cancel", None),
        ("pause", None),
        ("resume", None),
        ("retry", {}),
        ("input", {"nodeId": "n0", "data": {}}),
    ]:
        response = await client.post(f"/execution/{execution_id}/{verb}", json=body)
        assert response.status_code == 409, (verb, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"][0]["currentStatus"] == "completed"
        assert "completed" in error["message"]
    missing = await client.post(f"/execution/{uuid.uuid4()}/cancel")
    assert missing.status_code == 404


async def test_cancel_racing_completion_never_flips_a_terminal_status(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    ids = []
    async with running_worker(settings):
        for _ in range(30):
            accepted = await submit(client, chain(3), mode="queued")
            ids.append(accepted["executionId"])
            await client.post(f"/execution/{accepted['executionId']}/cancel")
        finals = [
            (await wait_for_status(client, i, {"completed", "cancelled", "failed"}))["status"]
            for i in ids
        ]
        await asyncio.sleep(0.3)
    for execution_id, final in zip(ids, finals, strict=True):
        now = (await client.get(f"/execution/{execution_id}")).json()["status"]
        assert now == final
        terminal = [
            t
            for t in await event_types(engine, execution_id)
            if t in ("execution.completed", "execution.cancelled", "execution.failed")
        ]
        assert terminal == [f"execution.{final}"]


@pytest.mark.parametrize(
    ("default", "status"), [({"approved": False}, "completed"), (None, "failed")]
)
async def test_human_input_timeout_takes_default_or_fails(
    client: httpx.AsyncClient, settings: Settings, default: Any, status: str
) -> None:
    params: dict[str, Any] = {"prompt": "Approve?", "timeout": 300}
    if default is not None:
        params["default"] = default
    workflow = {"nodes": [{"id": "ask", "type": "human.input", "params": params}]}
    async with running_worker(settings):
        first = await submit(client, workflow, mode="immediate")
        assert first["status"] == "waiting"
        assert first["wakeAt"] is not None
        done = await wait_for_status(client, first["executionId"], {"completed", "failed"})
    assert done["status"] == status
    if default is not None:
        assert done["result"] == {"ask": default}
    else:
        assert done["error"]["code"] == "human_timeout"


async def test_time_spent_paused_does_not_count_toward_timeout(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "delay", "params": {"ms": 400}},
            {"id": "b", "type": "delay", "params": {"ms": 400}, "dependsOn": ["a"]},
        ]
    }
    async with running_worker(settings):
        accepted = await submit(client, workflow, mode="queued", options={"timeout": 1200})
        execution_id = accepted["executionId"]
        await wait_for_status(client, execution_id, {"running"})
        await client.post(f"/execution/{execution_id}/pause")
        await wait_for_status(client, execution_id, {"paused"})
        await asyncio.sleep(1.5)  # longer than the timeout: it must not count
        await client.post(f"/execution/{execution_id}/resume")
        done = await wait_for_status(client, execution_id, {"completed", "failed"})
    assert done["status"] == "completed", done["error"]


async def test_timeout_fails_a_running_execution(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 3000}}]}
    async with running_worker(settings):
        accepted = await submit(client, workflow, mode="queued", options={"timeout": 300})
        done = await wait_for_status(client, accepted["executionId"], {"completed", "failed"})
    assert done["status"] == "failed"
    assert done["error"]["code"] == "timeout"
    assert done["steps"][0]["status"] == "cancelled"
