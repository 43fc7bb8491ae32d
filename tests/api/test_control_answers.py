"""Control verbs answer truthfully: who asked, what became of the steps, and a verb that came
too late says so."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.api.test_control import submit
from tests.api.test_queued_runs import chain, wait_for_status
from tests.support.workers import running_worker

TERMINAL = {"completed", "failed", "cancelled"}


async def event_data(engine: AsyncEngine, execution_id: str, kind: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT data FROM execution_events WHERE execution_id = :id AND type = :t "
                "ORDER BY seq"
            ),
            {"id": uuid.UUID(execution_id), "t": kind},
        )
        return [r[0] for r in rows]


async def wait_for_step(
    client: httpx.AsyncClient, execution_id: str, node_id: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, Any] = (await client.get(f"/execution/{execution_id}")).json()
        if any(s["nodeId"] == node_id and s["status"] == status for s in body["steps"]):
            return body
        assert time.monotonic() < deadline, f"step {node_id} never {status}: {body}"
        await asyncio.sleep(0.02)


LONG = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 3000}}]}


async def test_actor_is_recorded_when_cancelling_a_running_execution(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with running_worker(settings):
        accepted = await submit(client, LONG, mode="queued")
        execution_id = accepted["executionId"]
        await wait_for_step(client, execution_id, "a", "running")
        response = await client.post(
            f"/execution/{execution_id}/cancel", headers={"X-Actor": "ana@example.com"}
        )
        body = await wait_for_status(client, execution_id, {"cancelled"})
    assert response.status_code == 200 and response.json()["changed"] is True
    assert body["error"] == {"code": "cancelled", "message": "cancelled by ana@example.com"}
    [cancelled] = await event_data(engine, execution_id, "execution.cancelled")
    assert cancelled["requestedBy"] == "ana@example.com"


async def test_actor_is_recorded_when_pausing_a_running_execution(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    async with running_worker(settings):
        accepted = await submit(client, LONG, mode="queued")
        execution_id = accepted["executionId"]
        await wait_for_step(client, execution_id, "a", "running")
        response = await client.post(
            f"/execution/{execution_id}/pause",
            params={"abort": "true"},
            headers={"X-Actor": "bob"},
        )
        await wait_for_status(client, execution_id, {"paused"})
    assert response.status_code == 200 and response.json()["changed"] is True
    [paused] = await event_data(engine, execution_id, "execution.paused")
    assert paused["requestedBy"] == "bob"


async def test_pause_abort_ends_running_steps_and_a_later_cancel_keeps_them_ended(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "delay", "params": {"ms": 3000}},
            {"id": "b", "type": "delay", "params": {"ms": 3000}},
            {"id": "c", "type": "transform", "params": {"v": 1}, "dependsOn": ["a"]},
        ]
    }
    async with running_worker(settings):
        accepted = await submit(client, workflow, mode="queued")
        execution_id = accepted["executionId"]
        await wait_for_step(client, execution_id, "a", "running")
        await wait_for_step(client, execution_id, "b", "running")
        paused = await client.post(f"/execution/{execution_id}/pause", params={"abort": "true"})
        assert paused.status_code == 200, paused.text
        body = await wait_for_status(client, execution_id, {"paused"})
        assert {s["nodeId"]: s["status"] for s in body["steps"]} == {
            "a": "cancelled",
            "b": "cancelled",
        }
        cancelled = await client.post(f"/execution/{execution_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        body = (await client.get(f"/execution/{execution_id}")).json()
    assert body["status"] == "cancelled"
    assert {s["status"] for s in body["steps"]} == {"cancelled"}


async def test_cancel_of_a_waiting_execution_ends_its_waiting_step(
    client: httpx.AsyncClient,
) -> None:
    workflow = {"nodes": [{"id": "ask", "type": "human.input", "params": {"prompt": "ok?"}}]}
    first = await submit(client, workflow, mode="immediate")
    assert first["status"] == "waiting"
    response = await client.post(f"/execution/{first['executionId']}/cancel")
    assert response.status_code == 200
    assert [s["status"] for s in response.json()["steps"]] == ["cancelled"]


async def test_a_cancel_that_comes_too_late_says_so(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    """Many races of cancel against the completion of a short run: whatever the timing, the
    answer agrees with where the execution ended."""
    rng = random.Random(11)
    outcomes: list[tuple[int, str, bool | None, str]] = []

    async def race() -> None:
        accepted = await submit(client, chain(2), mode="queued")
        execution_id = accepted["executionId"]
        await asyncio.sleep(rng.uniform(0, 0.15))  # a run takes 15-60 ms: both ways
        verb = rng.choice(["cancel", "pause"])
        response = await client.post(f"/execution/{execution_id}/{verb}")
        final = await wait_for_status(client, execution_id, TERMINAL | {"paused"})
        body = response.json()
        if response.status_code == 200:
            outcomes.append((200, body["status"], body["changed"], final["status"]))
            target = "cancelled" if verb == "cancel" else "paused"
            # changed: true only beside the status asked for; false beside the one it ended in
            assert body["changed"] == (final["status"] == target), (verb, body, final["status"])
            assert body["status"] == final["status"], (verb, body["status"], final["status"])
        else:
            assert response.status_code == 409, response.text
            current = body["error"]["details"][0]["currentStatus"]
            outcomes.append((409, current, None, final["status"]))
            assert current == final["status"] == "completed"

    async with running_worker(settings):
        for _ in range(15):
            await asyncio.gather(*(race() for _ in range(10)))
    too_late = [o for o in outcomes if o[0] == 200 and o[2] is False]
    obeyed = [o for o in outcomes if o[0] == 200 and o[2] is True]
    assert len(outcomes) == 150
    assert obeyed, outcomes  # the races went both ways
    assert too_late or any(o[0] == 409 for o in outcomes), outcomes


async def test_replays_of_a_running_immediate_execution_all_answer_202(
    client: httpx.AsyncClient,
) -> None:
    workflow = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 1500}}]}
    body = {"workflow": workflow, "mode": "immediate"}
    headers = {"Idempotency-Key": f"replay-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(client.post("/workflow/run", json=body, headers=headers) for _ in range(30))
    )
    answers = [(r.status_code, r.json()["status"]) for r in responses]
    assert len({r.json()["executionId"] for r in responses}) == 1
    assert (200, "completed") in answers  # the request that ran it
    for code, status in answers:
        assert code == (200 if status in TERMINAL else 202), answers
