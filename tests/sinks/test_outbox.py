"""The outbox in the store: which writes get deliveries, claims in order, expired leases."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.execution.queue import InProcessQueue
from app.execution.reconciler import Reconciler
from app.sinks.cache import SubscriptionCache
from app.store.deliveries import DeliveryStore
from app.store.outbox import OutboxMatcher
from app.store.repository import Repository
from app.store.subscriptions import SubscriptionStore
from app.store.tables import event_deliveries
from tests.support.executions import insert_pending

ONE = {"nodes": [{"id": "a", "type": "transform", "params": {}}]}


async def subscribe(engine: AsyncEngine, **values: Any) -> uuid.UUID:
    row = {
        "id": uuid.uuid4(),
        "namespace": "default",
        "sink": "webhook",
        "url": "http://127.0.0.1:9/",
        "stream": None,
        "events": ["*"],
        "workflow": None,
        "description": None,
        "secret": None,
        **values,
    }
    return (await SubscriptionStore(engine).create(row)).id


async def cached_repo(engine: AsyncEngine) -> Repository:
    matcher = OutboxMatcher()
    await SubscriptionCache(SubscriptionStore(engine), matcher, 1000).load()
    return Repository(engine, matcher)


async def deliveries_of(engine: AsyncEngine, sub: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(event_deliveries.c.execution_id, event_deliveries.c.seq)
            .where(event_deliveries.c.subscription_id == sub)
            .order_by(event_deliveries.c.id)
        )
        return [(r.execution_id, r.seq) for r in rows]


async def test_a_write_adds_deliveries_for_its_namespace_and_workflow_only(
    engine: AsyncEngine,
) -> None:
    everything = await subscribe(engine)
    tests_only = await subscribe(engine, workflow="test", events=["execution.created"])
    other_workflow = await subscribe(engine, workflow="billing")
    other_namespace = await subscribe(engine, namespace="team-b")
    steps_only = await subscribe(engine, events=["step.*"])
    repo = await cached_repo(engine)
    execution_id = await insert_pending(repo, ONE)  # workflow "test", namespace "default"
    assert await deliveries_of(engine, everything) == [(execution_id, 1)]
    assert await deliveries_of(engine, tests_only) == [(execution_id, 1)]
    for sub in (other_workflow, other_namespace, steps_only):
        assert await deliveries_of(engine, sub) == []


async def test_a_write_before_any_subscription_adds_nothing(engine: AsyncEngine) -> None:
    repo = await cached_repo(engine)
    await insert_pending(repo, ONE)
    async with engine.connect() as conn:
        assert (await conn.scalar(select(func.count()).select_from(event_deliveries))) == 0


async def test_one_queue_is_claimed_by_one_worker_and_in_order(engine: AsyncEngine) -> None:
    sub = await subscribe(engine)
    repo = await cached_repo(engine)
    a = await insert_pending(repo, ONE)
    await repo.claim(a, "runner", 3000, ("execution.started", {}))  # seq 2 of execution a
    b = await insert_pending(repo, ONE)
    store = DeliveryStore(engine)
    first = await store.claim("w1", 10, 30_000)
    assert [(d.execution_id, d.seq) for d in first if d.execution_id == a] == [(a, 1), (a, 2)]
    assert {d.execution_id for d in first} == {a, b}
    assert await store.claim("w2", 10, 30_000) == []  # every queue is leased
    head = next(d for d in first if d.execution_id == a)
    await store.failed("w1", head, 500, "HTTP 500", retry_in_ms=60_000)
    assert await store.claim("w2", 10, 30_000) == []  # seq 2 waits behind seq 1's retry
    await store.failed("w1", head, 500, "HTTP 500", retry_in_ms=None)  # the last attempt
    again = await store.claim("w2", 10, 30_000)  # a dead seq 1 holds nothing back
    assert [(d.execution_id, d.seq) for d in again] == [(a, 2)]
    dead, _ = await store.listed(sub, status="dead")
    assert [(d.seq, d.attempts, d.last_error) for d in dead] == [(1, 2, "HTTP 500")]


async def test_the_reconciler_releases_a_dead_workers_deliveries(
    engine: AsyncEngine, settings: Settings
) -> None:
    await subscribe(engine)
    repo = await cached_repo(engine)
    await insert_pending(repo, ONE)
    store = DeliveryStore(engine)
    assert len(await store.claim("dead-worker", 10, 30_000)) == 1
    assert await store.claim("w2", 10, 30_000) == []
    async with engine.begin() as conn:  # the dead worker's lease runs out
        await conn.execute(update(event_deliveries).values(lease_expires_at=utcnow()))
    queue = InProcessQueue(lambda _id: _noop(), 1)
    await Reconciler(settings, repo, queue).run_once()
    async with engine.connect() as conn:
        owner = await conn.scalar(select(event_deliveries.c.lease_owner))
    assert owner is None
    assert len(await store.claim("w2", 10, 30_000)) == 1


async def _noop() -> None:
    return None


async def test_old_finished_deliveries_are_pruned(engine: AsyncEngine) -> None:
    sub = await subscribe(engine)
    repo = await cached_repo(engine)
    await insert_pending(repo, ONE)
    await insert_pending(repo, ONE)
    store = DeliveryStore(engine)
    [first, second] = await store.claim("w1", 10, 30_000)
    await store.delivered([first.id], 204)
    assert await store.prune(utcnow()) == 1  # the pending one stays
    items, _ = await store.listed(sub)
    assert [d.id for d in items] == [second.id]
