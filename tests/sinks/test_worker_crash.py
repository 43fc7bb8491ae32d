"""kill -9 of the worker process that is delivering: nothing is lost, duplicates keep their id."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.sinks.conftest import ALL
from tests.sinks.test_webhooks import start_runs, stored_seqs, subscribe
from tests.support.executions import wait_until
from tests.support.receiver import Receiver
from tests.support.workers import worker_process

FAST = {"TURNOUT_SINK_LEASE_MS": "1000", "TURNOUT_SINK_POLL_MS": "50"}


async def test_killing_the_delivering_worker_loses_nothing(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    receiver.delay_s = 0.1  # slow enough to kill the worker mid-queue
    await subscribe(client, url=receiver.url, **ALL)
    ids = await start_runs(client, 10, "immediate")  # committed before any worker runs
    want = await stored_seqs(engine, ids)
    total = sum(len(s) for s in want.values())
    with worker_process(sink_settings, **FAST) as first:
        await wait_until(lambda: len(receiver.received) >= 15, "some deliveries", timeout_s=30)
        first.kill()
        first.wait()
    got_before = len(receiver.received)
    assert got_before < total, "the worker finished before it was killed"
    await asyncio.sleep(0.3)  # anything in flight lands
    with worker_process(sink_settings, **FAST):

        async def complete() -> bool:
            got = receiver.by_execution()
            return all(sorted(set(got.get(i, []))) == want[i] for i in ids)

        await wait_until(complete, "every event delivered after the crash", timeout_s=60)
    by_id: dict[str, set[bytes]] = {}
    for r in receiver.received:
        assert r.event_id == f"{r.event['executionId']}:{r.event['seq']}"
        by_id.setdefault(r.event_id, set()).add(r.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a duplicate is the same event
    for execution_id, seqs in receiver.by_execution().items():
        first_seen = list(dict.fromkeys(seqs))
        assert first_seen == want[execution_id]  # in order, duplicates aside


async def test_killing_the_worker_mid_batch_loses_nothing(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings, engine: AsyncEngine
) -> None:
    receiver.delay_s = 0.1
    await subscribe(client, url=receiver.url, batchSize=4, **ALL)
    ids = await start_runs(client, 10, "immediate")
    want = await stored_seqs(engine, ids)
    total = sum(len(s) for s in want.values())

    def events() -> list[dict[str, object]]:
        with receiver.lock:
            return [e for r in receiver.received for e in json.loads(r.body)]

    with worker_process(sink_settings, **FAST) as first:
        await wait_until(lambda: len(receiver.received) >= 5, "some batches", timeout_s=30)
        first.kill()
        first.wait()
    assert len(events()) < total, "the worker finished before it was killed"
    await asyncio.sleep(0.3)
    with worker_process(sink_settings, **FAST):

        async def complete() -> bool:
            seen = {(str(e["executionId"]), e["seq"]) for e in events()}
            return all((i, s) in seen for i in ids for s in want[i])

        await wait_until(complete, "every event delivered after the crash", timeout_s=60)
    by_id: dict[str, set[str]] = {}
    order: dict[str, list[object]] = {}
    for e in events():
        by_id.setdefault(f"{e['executionId']}:{e['seq']}", set()).add(json.dumps(e))
        order.setdefault(str(e["executionId"]), []).append(e["seq"])
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a duplicate is the same event
    assert {i: list(dict.fromkeys(s)) for i, s in order.items()} == want
