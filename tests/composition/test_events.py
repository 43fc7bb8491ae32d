"""Events: POST /events, the wait.event node, triggers (Postgres + Redis, real processes)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.composition.flows import register, wait_for
from tests.support.workers import api_process, running_worker

ENDED = {"completed", "failed", "cancelled"}


def waiter(match: str | None = None, timeout: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "order.paid"}
    if match is not None:
        params["match"] = match
    if timeout is not None:
        params["timeout"] = timeout
    return {
        "name": "wait-for-payment",
        "nodes": [
            {"id": "paid", "type": "wait.event", "params": params},
            {"id": "done", "type": "transform", "params": {"amount": "{{ paid.data.amount }}"}},
        ],
        "output": "{{ done.amount }}",
    }


async def run(client: httpx.AsyncClient, workflow: dict[str, Any], data: Any = None) -> str:
    body = {"workflow": workflow, "input": data or {}}
    answer = await client.post("/workflow/run", json=body)
    assert answer.status_code == 202, answer.text  # a durable wait is queued
    execution_id: str = answer.json()["executionId"]
    return execution_id


async def send(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/events", json=body)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


async def test_waiting_run_resumes_with_the_matching_event(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async with running_worker(settings):
        execution_id = await run(
            client, waiter(match="event.data.orderId == input.orderId"), {"orderId": "A1"}
        )
        await wait_for(client, execution_id, {"waiting"})
        await send(client, name="order.paid", data={"orderId": "B2", "amount": 1})
        await send(client, name="other", data={"orderId": "A1", "amount": 2})
        await asyncio.sleep(0.5)
        still = (await client.get(f"/execution/{execution_id}")).json()
        assert still["status"] == "waiting"  # neither event matched
        sent = await send(client, name="order.paid", data={"orderId": "A1", "amount": 30})
        done = await wait_for(client, execution_id, ENDED)
    assert done["status"] == "completed", done
    assert done["result"] == 30
    step = next(s for s in done["steps"] if s["nodeId"] == "paid")
    assert step["output"]["id"] == sent["id"]
    assert step["output"]["data"] == {"orderId": "A1", "amount": 30}


async def test_event_sent_just_before_the_waiter_parks_is_not_lost(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await send(client, name="order.paid", data={"amount": 7})
    async with running_worker(settings):
        execution_id = await run(client, waiter())
        done = await wait_for(client, execution_id, ENDED)
    assert done["status"] == "completed" and done["result"] == 7


async def test_event_older_than_the_keep_window_is_not_matched(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await send(client, name="order.paid", data={"amount": 7})
    await asyncio.sleep(0.3)
    short = settings.model_copy(update={"event_keep_ms": 100})
    async with running_worker(short, ctx={"settings": short}):
        execution_id = await run(client, waiter(timeout=800))
        done = await wait_for(client, execution_id, ENDED)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "event_timeout"


async def test_repeated_event_id_is_idempotent(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first = await send(client, name="order.paid", data={"amount": 1}, id="evt-1")
    again = await send(client, name="order.paid", data={"amount": 999}, id="evt-1")
    assert again == first
    assert first["id"] == "evt-1" and first["data"] == {"amount": 1}
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM events"))
    assert count == 1


async def test_bad_event_bodies_are_422_and_store_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for body in ({}, {"name": ""}, {"name": "a b"}, {"name": "x", "id": ""}, {"name": "x", "z": 1}):
        answer = await client.post("/events", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["details"]
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM events")) == 0


async def test_match_expression_error_fails_the_step_clearly(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async with running_worker(settings):
        execution_id = await run(client, waiter(match="event.data.missing.deeper > 1"))
        await wait_for(client, execution_id, {"waiting"})
        await send(client, name="order.paid", data={"amount": 1})
        done = await wait_for(client, execution_id, ENDED)
    assert done["status"] == "failed"
    assert done["error"]["nodeId"] == "paid"
    assert done["error"]["message"].startswith("match:")


async def test_bad_match_expression_is_a_422_at_validation(client: httpx.AsyncClient) -> None:
    answer = await client.post("/workflow/run", json={"workflow": waiter(match="event.(")})
    assert answer.status_code == 422, answer.text


TRIGGERED = {
    "name": "on-paid",
    "version": "1",
    "on": {"event": "order.paid", "when": "event.data.amount >= 10"},
    "nodes": [{"id": "got", "type": "transform", "params": {"amount": "{{ input.data.amount }}"}}],
    "output": "{{ got.amount }}",
}


async def test_trigger_starts_one_run_per_matching_event(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, TRIGGERED)
    async with running_worker(settings):
        small = await send(client, name="order.paid", data={"amount": 5}, id="small")
        assert small["runs"] == []  # `when` is false
        big = await send(client, name="order.paid", data={"amount": 50}, id="big")
        [started] = big["runs"]
        assert started["workflow"] == "on-paid" and started["version"] == "1"
        done = await wait_for(client, started["executionId"], ENDED)
    assert done["status"] == "completed" and done["result"] == 50
    assert done["input"]["id"] == "big" and done["input"]["name"] == "order.paid"
    assert done["metadata"]["trigger"] == {"eventId": "big", "event": "order.paid"}
    again = await send(client, name="order.paid", data={"amount": 50}, id="big")
    assert again["runs"] == big["runs"]


async def test_trigger_runs_once_per_event_id_across_two_api_processes(
    settings: Settings, engine: AsyncEngine
) -> None:
    with api_process(settings) as (_, url_a), api_process(settings) as (_, url_b):
        async with httpx.AsyncClient(timeout=30) as http:
            registered = await http.post(f"{url_a}/workflows", json=TRIGGERED)
            assert registered.status_code in (200, 201), registered.text
            for round_ in range(10):
                body = {"name": "order.paid", "data": {"amount": 10 + round_}, "id": f"e{round_}"}
                answers = await asyncio.gather(
                    *(http.post(f"{url}/events", json=body) for url in (url_a, url_b) * 3)
                )
                assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
                ids = {a.json()["runs"][0]["executionId"] for a in answers}
                assert len(ids) == 1, ids
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT metadata->'trigger'->>'eventId' AS e, count(*) AS n "
                    "FROM workflow_executions GROUP BY 1 ORDER BY 1"
                )
            )
        ).all()
        events = await conn.scalar(text("SELECT count(*) FROM events"))
    assert [(r.e, r.n) for r in rows] == [(f"e{i}", 1) for i in range(10)]
    assert events == 10


async def test_an_event_whose_wake_up_was_lost_is_delivered_by_the_reconciler(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    quick = settings.model_copy(update={"reconcile_pending_grace_ms": 300})
    async with running_worker(quick, ctx={"settings": quick}):
        execution_id = await run(client, waiter())
        await wait_for(client, execution_id, {"waiting"})
        async with engine.begin() as conn:  # stored, but nobody woken: as if the API died
            await conn.execute(
                text(
                    "INSERT INTO events (namespace, event_id, name, data, received_at) "
                    "VALUES ('default', 'lost-1', 'order.paid', '{\"amount\": 4}', now())"
                )
            )
        done = await wait_for(client, execution_id, ENDED, timeout=15)
    assert done["status"] == "completed" and done["result"] == 4


async def test_trigger_when_is_checked_at_registration(client: httpx.AsyncClient) -> None:
    for on in (
        {"event": "x", "when": "event.("},
        {"event": "x", "when": "input.a == 1"},
        {"event": ""},
        {"when": "true"},
    ):
        answer = await client.post("/workflows", json={**TRIGGERED, "version": "9", "on": on})
        assert answer.status_code == 422, (on, answer.text)
    listed = (await client.get("/workflows")).json()["items"]
    assert listed == []


async def test_node_types_lists_the_composing_types(client: httpx.AsyncClient) -> None:
    items = {i["name"]: i for i in (await client.get("/node-types")).json()["items"]}
    assert items["workflow"]["complexity"]["external"] is True
    assert set(items["workflow"]["paramsSchema"]["properties"]) == {"workflow", "version", "input"}
    assert set(items["wait.event"]["paramsSchema"]["properties"]) == {"name", "match", "timeout"}


async def test_waiters_on_two_worker_processes_get_events_sent_to_another_api_process(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    from tests.support.workers import worker_process

    match = "event.data.orderId == input.orderId"
    with worker_process(settings), worker_process(settings), api_process(settings) as (_, other):
        ids = {
            order: await run(client, waiter(match=match), {"orderId": order})
            for order in ("o1", "o2", "o3", "o4")
        }
        for execution_id in ids.values():
            await wait_for(client, execution_id, {"waiting"})
        async with httpx.AsyncClient(base_url=other, timeout=30) as sender:
            for amount, order in enumerate(ids, start=1):
                answer = await sender.post(
                    "/events",
                    json={"name": "order.paid", "data": {"orderId": order, "amount": amount}},
                )
                assert answer.status_code == 200, answer.text
        results = {
            order: (await wait_for(client, execution_id, ENDED))["result"]
            for order, execution_id in ids.items()
        }
    assert results == {"o1": 1, "o2": 2, "o3": 3, "o4": 4}
