"""The outbox in the store: which writes get deliveries, claims in order, expired leases."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.execution.queue import InProcessQueue
from app.execution.reconciler import Reconciler
from app.sinks.cache import SubscriptionCache
from app.sinks.recorder import DeliveryRecorder
from app.store.database import make_engine, upgrade_schema
from app.store.deliveries import DeliveryRecord, DeliveryStore, Recorded
from app.store.outbox import OutboxMatcher, Target
from app.store.records import Checkpoint
from app.store.repository import Repository
from app.store.subscriptions import SubscriptionStore
from app.store.tables import event_deliveries
from tests.support.executions import insert_pending, new_queued

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


class CountingStore(DeliveryStore):
    """The real store, counting its batched statements."""

    statements = 0

    async def delivered_and_next(
        self, owner: str, batch: list[Recorded], lease_ms: int
    ) -> list[list[DeliveryRecord]]:
        self.statements += 1
        return await super().delivered_and_next(owner, batch, lease_ms)


async def test_many_queues_are_recorded_and_go_on_in_one_statement(engine: AsyncEngine) -> None:
    await subscribe(engine)
    repo = await cached_repo(engine)
    executions = [await insert_pending(repo, ONE) for _ in range(4)]
    store = CountingStore(engine)
    heads = {d.execution_id: d for d in await store.claim("w1", 10, 30_000)}
    assert set(heads) == set(executions)
    for execution_id in executions[:3]:  # seq 2 arrives while seq 1 is being sent
        await repo.claim(execution_id, "runner", 3000, ("execution.started", {}))
    recorder = DeliveryRecorder(store, "w1", 30_000)
    a, b, c, d = (heads[x] for x in executions)
    found = await asyncio.gather(
        recorder.record(Recorded([a.id], 204, a)),
        recorder.record(Recorded([b.id], 200, b)),
        recorder.record(Recorded([c.id], 202)),  # c stops here: its seq 2 is not taken
        recorder.record(Recorded([d.id], 201, d)),  # nothing came after d
    )
    assert store.statements <= 2  # the first flush starts at once, the rest go together
    assert [[(x.execution_id, x.seq) for x in rows] for rows in found] == [
        [(a.execution_id, 2)],
        [(b.execution_id, 2)],
        [],
        [],
    ]
    assert all(rows[0].body is not None for rows in found[:2])
    delivered, _ = await store.listed(a.subscription_id, status="delivered")
    assert sorted((x.execution_id, x.last_status) for x in delivered) == sorted(
        [(a.execution_id, 204), (b.execution_id, 200), (c.execution_id, 202), (d.execution_id, 201)]
    )
    # a's and b's seq 2 are leased to w1 now; c's is free for the next claim.
    assert [(x.execution_id, x.seq) for x in await store.claim("w2", 10, 30_000)] == [
        (c.execution_id, 2)
    ]
    await recorder.close()


def test_a_subscription_takes_each_run_of_consecutive_events_it_matches() -> None:
    matcher = OutboxMatcher()
    every, steps = uuid.uuid4(), uuid.uuid4()
    matcher.replace(
        [Target(every, "default", None, ("*",)), Target(steps, "default", None, ("step.*",))]
    )
    types = ["step.started", "step.completed", "execution.paused", "step.started"]
    runs = [(c["sub"], c["i"], c["j"], c["type"]) for c in matcher.candidates(types)]
    assert runs == [
        (str(every), 1, 4, "step.started"),
        (str(steps), 1, 2, "step.started"),
        (str(steps), 4, 4, "step.started"),
    ]
    assert matcher.candidates(["execution.paused"])[1:] == []  # "step.*" takes none
    assert matcher.takes_any(["execution.paused"])
    only_steps = OutboxMatcher()
    only_steps.replace([Target(steps, "team", "billing", ("step.*",))])
    assert only_steps.takes_any(["execution.started", "step.failed"])
    assert not only_steps.takes_any(["execution.started", "execution.completed"])


@pytest_asyncio.fixture(params=["postgresql", "sqlite"])
async def both(
    request: pytest.FixtureRequest, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """The session's Postgres engine, or a new SQLite database (the statements path)."""
    if request.param == "postgresql":
        yield engine
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    await upgrade_schema(url)
    lite = make_engine(url)
    try:
        yield lite
    finally:
        await lite.dispose()


async def test_one_commit_makes_one_delivery_of_its_events_claimed_one_by_one(
    both: AsyncEngine,
) -> None:
    engine = both
    sub = await subscribe(engine)
    repo = await cached_repo(engine)
    execution_id = await insert_pending(repo, ONE)
    await repo.claim(execution_id, "runner", 3000, ("execution.started", {}))
    cp = Checkpoint(events=[("step.started", {}), ("step.completed", {})] * 2)
    await repo.checkpoint(execution_id, "runner", cp, 3000)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(event_deliveries.c.seq, event_deliveries.c.last_seq)
            .where(event_deliveries.c.subscription_id == sub)
            .order_by(event_deliveries.c.seq)
        )
        assert [tuple(r) for r in rows] == [(1, 1), (2, 2), (3, 6)]
    store = DeliveryStore(engine)
    claimed = await store.claim("w1", 10, 30_000)
    assert [d.seq for d in claimed] == [1, 2, 3, 4, 5, 6]
    assert [json.loads(d.body)["seq"] for d in claimed if d.body] == [1, 2, 3, 4, 5, 6]
    assert len({d.id for d in claimed[2:]}) == 1  # the checkpoint's one delivery
    listed, _ = await store.listed(sub)
    assert [(d.seq, d.last_seq) for d in listed] == [(3, 6), (2, 2), (1, 1)]
    await store.delivered(list({d.id for d in claimed}), 200)
    counts = await store.counts([sub])
    assert counts[sub] == {"delivered": 6}  # counted in events


async def test_creations_sharing_a_commit_each_get_their_delivery(both: AsyncEngine) -> None:
    engine = both
    sub = await subscribe(engine)
    repo = await cached_repo(engine)
    news = [new_queued(ONE) for _ in range(3)]
    await repo.create_executions([(new, [("execution.created", {})]) for new in news])
    found = await deliveries_of(engine, sub)
    assert sorted(found) == sorted((new.id, 1) for new in news)
