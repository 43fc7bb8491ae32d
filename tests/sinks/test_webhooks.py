"""Webhooks from a real API and a real arq worker to a real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.sinks.signing import verify
from app.store.repository import Repository
from tests.sinks.conftest import ALL, PIPELINE
from tests.support.executions import wait_until
from tests.support.receiver import Receiver
from tests.support.workers import running_worker


async def subscribe(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/subscriptions", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def start_runs(client: httpx.AsyncClient, n: int, mode: str = "queued") -> list[str]:
    async def one(i: int) -> str:
        response = await client.post(
            "/workflow/run", json={"workflow": PIPELINE, "mode": mode, "input": {"i": i}}
        )
        assert response.status_code in (200, 202), response.text
        return str(response.json()["executionId"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def stored_seqs(engine: AsyncEngine, ids: list[str]) -> dict[str, list[int]]:
    repo = Repository(engine)
    return {i: [e.seq for e in await repo.events_after(UUID(i), 0)] for i in ids}


async def test_every_event_of_50_runs_arrives_in_order_per_execution(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    sub = await subscribe(client, url=receiver.url, **ALL)
    assert sub["secret"].startswith("whsec_")
    async with running_worker(sink_settings):
        ids = await start_runs(client, 25, "queued") + await start_runs(client, 25, "immediate")

        async def all_arrived() -> bool:
            got = receiver.by_execution()
            want = await stored_seqs(engine, ids)
            return all(len(want[i]) >= 8 and got.get(i) == want[i] for i in ids)

        try:
            await wait_until(all_arrived, "every event delivered", timeout_s=60)
        except AssertionError:
            got, want = receiver.by_execution(), await stored_seqs(engine, ids)
            bad = [(got.get(i), want[i]) for i in ids if got.get(i) != want[i]]
            raise AssertionError(f"{len(bad)} differ, e.g. {bad[:3]}") from None
    # Each one signed with the subscription's secret, its id the execution and seq.
    for r in receiver.received:
        assert verify(sub["secret"], r.headers["turnout-signature"], r.body)
        assert r.event_id == f"{r.event['executionId']}:{r.event['seq']}"
        assert r.headers["turnout-timestamp"] == r.headers["turnout-signature"][2:12]
    page = (await client.get(f"/subscriptions/{sub['id']}")).json()
    assert page["deliveries"] == {"delivered": len(receiver.received)}
    assert page["status"] == "active"


async def test_a_receiver_failing_three_times_then_succeeding_gets_the_event(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings
) -> None:
    receiver.fail_first = 3
    sub = await subscribe(client, url=receiver.url, sink="webhook", events=["execution.completed"])
    async with running_worker(sink_settings):
        [execution_id] = await start_runs(client, 1, "immediate")
        await wait_until(lambda: len(receiver.received) == 1, "delivered after retries")
    assert receiver.attempts == 4
    assert receiver.received[0].event["type"] == "execution.completed"
    assert receiver.received[0].event["executionId"] == execution_id
    [delivery] = (await client.get(f"/subscriptions/{sub['id']}/deliveries")).json()["items"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 4
    assert delivery["eventId"] == receiver.received[0].event_id


async def test_a_failure_inside_a_delivery_of_many_events_sends_it_again_from_its_first(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings
) -> None:
    receiver.fail_at = {4}  # the fourth event of the run's one commit (one POST each)
    sub = await subscribe(client, url=receiver.url, **ALL)
    async with running_worker(sink_settings):
        [execution_id] = await start_runs(client, 1, "immediate")
        await wait_until(lambda: len(receiver.received) >= 3 + 9, "delivered after the retry")
    [delivery] = (await client.get(f"/subscriptions/{sub['id']}/deliveries")).json()["items"]
    assert (delivery["seq"], delivery["lastSeq"], delivery["events"]) == (1, 9, 9)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    seqs = [r.event["seq"] for r in receiver.received]
    assert seqs == [1, 2, 3, *range(1, 10)]  # in order; the retry starts at its first event
    ids = {r.event_id for r in receiver.received}
    assert ids == {f"{execution_id}:{n}" for n in range(1, 10)}  # duplicates keep their id


async def test_after_the_last_attempt_the_delivery_is_dead_and_can_be_redelivered(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings
) -> None:
    receiver.status = 503
    sub = await subscribe(client, url=receiver.url, sink="webhook", events=["execution.completed"])
    settings = sink_settings.model_copy(update={"sink_max_attempts": 3})
    async with running_worker(settings):
        await start_runs(client, 1, "immediate")

        async def dead() -> bool:
            items = (await client.get(f"/subscriptions/{sub['id']}/deliveries")).json()["items"]
            return bool(items) and items[0]["status"] == "dead"

        await wait_until(dead, "the delivery dead")
        found = (await client.get(f"/subscriptions/{sub['id']}")).json()
        assert found["status"] == "failing"
        [delivery] = (
            await client.get(f"/subscriptions/{sub['id']}/deliveries", params={"status": "dead"})
        ).json()["items"]
        assert delivery["attempts"] == 3
        assert delivery["lastStatus"] == 503
        assert "HTTP 503" in delivery["lastError"]

        receiver.status = 200
        again = await client.post(
            f"/subscriptions/{sub['id']}/deliveries/{delivery['id']}/redeliver"
        )
        assert again.status_code == 202, again.text
        await wait_until(lambda: len(receiver.received) == 1, "redelivered")

        async def active() -> bool:
            found = (await client.get(f"/subscriptions/{sub['id']}")).json()
            return bool(found["status"] == "active")

        await wait_until(active, "the subscription active again")
    assert receiver.received[0].event_id == delivery["eventId"]
