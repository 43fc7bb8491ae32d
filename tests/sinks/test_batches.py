"""Batched subscriptions (`batchSize` > 1): many executions' events per webhook POST (a
JSON array) or per Redis pipeline, in order per execution, none lost; a failed batch is
retried as a whole and dies as a whole."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.sinks.batches import cut
from app.sinks.signing import verify
from tests.sinks.conftest import ALL
from tests.sinks.test_webhooks import start_runs, stored_seqs, subscribe
from tests.support.executions import wait_until
from tests.support.receiver import Receiver
from tests.support.workers import running_worker


def arrived(receiver: Receiver) -> dict[str, list[int]]:
    """Every event received, by execution, in the order they came."""
    out: dict[str, list[int]] = {}
    with receiver.lock:
        for r in receiver.received:
            for event in json.loads(r.body):
                out.setdefault(event["executionId"], []).append(event["seq"])
    return out


async def every_event_arrives(
    receiver: Receiver, engine: AsyncEngine, ids: list[str], timeout_s: float = 60
) -> None:
    async def done() -> bool:
        got, want = arrived(receiver), await stored_seqs(engine, ids)
        return all(len(want[i]) >= 8 and got.get(i) == want[i] for i in ids)

    await wait_until(done, "every event delivered, in order", timeout_s=timeout_s)


async def test_a_batched_webhook_gets_arrays_of_many_executions_events_in_order(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    sub = await subscribe(client, url=receiver.url, batchSize=10, **ALL)
    assert sub["batchSize"] == 10
    async with running_worker(sink_settings):
        ids = await start_runs(client, 20, "queued") + await start_runs(client, 10, "immediate")
        await every_event_arrives(receiver, engine, ids)
    events = sum(len(s) for s in (await stored_seqs(engine, ids)).values())
    with receiver.lock:
        posts = list(receiver.received)
    assert len(posts) < events  # batched: fewer POSTs than events
    assert any(len({e["executionId"] for e in json.loads(p.body)}) > 1 for p in posts)
    for post in posts:
        batch = json.loads(post.body)
        assert isinstance(batch, list) and 1 <= len(batch) <= 10
        assert post.headers["turnout-event-count"] == str(len(batch))
        assert "turnout-event-id" not in post.headers
        assert verify(sub["secret"], post.headers["turnout-signature"], post.body)
        assert not verify("whsec_wrong-secret-0000", post.headers["turnout-signature"], post.body)


async def test_a_batch_that_fails_three_times_is_sent_again_until_it_arrives(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    receiver.fail_first = 3
    sub = await subscribe(client, url=receiver.url, batchSize=50, **ALL)
    async with running_worker(sink_settings):
        ids = await start_runs(client, 5, "immediate")
        await every_event_arrives(receiver, engine, ids)
    assert receiver.attempts >= 4
    items = await client.get(f"/subscriptions/{sub['id']}/deliveries", params={"limit": 500})
    statuses = {d["status"] for d in items.json()["items"]}
    assert statuses == {"delivered"}
    assert (await client.get(f"/subscriptions/{sub['id']}")).json()["status"] == "active"


async def test_a_batch_that_never_succeeds_dies_and_marks_the_subscription_failing(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings
) -> None:
    receiver.status = 503
    sub = await subscribe(
        client, url=receiver.url, batchSize=20, sink="webhook", events=["execution.completed"]
    )
    settings = sink_settings.model_copy(update={"sink_max_attempts": 2})
    async with running_worker(settings):
        await start_runs(client, 3, "immediate")

        async def three_dead() -> bool:
            page = await client.get(
                f"/subscriptions/{sub['id']}/deliveries", params={"status": "dead"}
            )
            return len(page.json()["items"]) == 3

        await wait_until(three_dead, "each execution's event dead")
    found = (await client.get(f"/subscriptions/{sub['id']}")).json()
    assert found["status"] == "failing"
    dead = (
        await client.get(f"/subscriptions/{sub['id']}/deliveries", params={"status": "dead"})
    ).json()["items"]
    assert all(d["attempts"] == 2 and d["lastStatus"] == 503 for d in dead)


async def test_a_batched_stream_gets_one_entry_per_event_in_order(
    client: httpx.AsyncClient, sink_settings: Settings, engine: AsyncEngine
) -> None:
    stream = f"{sink_settings.key_prefix}:batched"
    await subscribe(client, sink="redis-stream", stream=stream, events=["*"], batchSize=100)
    redis = aioredis.Redis.from_url(sink_settings.redis_url or "")
    try:
        async with running_worker(sink_settings):
            ids = await start_runs(client, 10, "queued")
            want = 0

            async def all_there() -> bool:
                nonlocal want
                want = sum(len(s) for s in (await stored_seqs(engine, ids)).values())
                return want >= 80 and int(await redis.xlen(stream)) >= want

            await wait_until(all_there, "every event in the stream", timeout_s=30)
        seen: dict[str, list[int]] = {}
        for _, fields in await redis.xrange(stream):
            seen.setdefault(json.loads(fields[b"data"])["executionId"], []).append(
                int(fields[b"seq"])
            )
        assert seen == await stored_seqs(engine, ids)
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def test_batch_size_is_checked_and_can_be_changed(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    for bad in (0, 1001, "ten"):
        response = await client.post(
            "/subscriptions", json={"url": receiver.url, "batchSize": bad, **ALL}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "batchSize"
    sub = await subscribe(client, url=receiver.url, **ALL)
    assert sub["batchSize"] == 1
    changed = await client.patch(f"/subscriptions/{sub['id']}", json={"batchSize": 200})
    assert changed.status_code == 200, changed.text
    assert changed.json()["batchSize"] == 200
    assert (await client.get(f"/subscriptions/{sub['id']}")).json()["batchSize"] == 200


def test_events_are_cut_in_order_by_count_and_by_bytes() -> None:
    items: list[Any] = list(range(7))
    assert cut(items, [1] * 7, 3, 100) == [[0, 1, 2], [3, 4, 5], [6]]
    assert cut(items, [40] * 7, 100, 100) == [[0, 1], [2, 3], [4, 5], [6]]
    assert cut([0, 1, 2], [10, 500, 10], 100, 100) == [[0], [1], [2]]  # too big: alone
    assert cut([], [], 3, 100) == []


async def test_a_busy_batched_subscription_lingers_between_deliveries(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    await subscribe(client, url=receiver.url, batchSize=500, **ALL)
    settings = sink_settings.model_copy(update={"sink_linger_ms": 400})
    async with running_worker(settings):
        await start_runs(client, 1, "immediate")
        await wait_until(lambda: len(receiver.received) >= 1, "the first delivery at once")
        ids = []
        for _ in range(8):  # a run every 50 ms: without lingering, a delivery or more each
            ids += await start_runs(client, 1, "immediate")
            await asyncio.sleep(0.05)
        await every_event_arrives(receiver, engine, ids)
    with receiver.lock:
        times = [r.at for r in receiver.received]
    assert len(times) <= 5, f"{len(times)} deliveries: they did not linger"
    assert all(b - a >= 0.3 for a, b in pairwise(times[1:]))
