"""Pure immediate runs are written once, at rest, on both databases; every other run is
created before its first step, as before (app/execution/deferred.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.config import Settings
from app.engine.status import Status
from app.execution.deferred import written_at_rest
from app.execution.manager import RunRequest
from app.nodes.registry import default_registry
from app.runtime import Runtime, build_runtime
from app.sinks.cache import SubscriptionCache
from app.store.repository import Repository
from app.store.subscriptions import SubscriptionStore
from app.store.tables import event_deliveries
from tests.sinks.test_outbox import subscribe
from tests.support.executions import new_queued

THREE: dict[str, Any] = {
    "name": "three",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "transform", "params": {"double": "{{ a.n * 2 }}"}},
        {"id": "c", "type": "transform", "params": {"msg": "double is {{ b.double }}"}},
    ],
    "output": {"double": "{{ b.double }}"},
}
# Longer than the checkpoint interval: its first flush comes mid-run.
SLOW = {"nodes": [{"id": "wait", "type": "delay", "params": {"ms": 400}}, THREE["nodes"][0]]}


@pytest.fixture(params=["postgresql", "sqlite"])
async def runtime(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Runtime]:
    updates: dict[str, Any] = {"schedule_tick_ms": 0, "checkpoint_interval_ms": 100}
    if request.param == "sqlite":
        updates |= {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", "redis_url": None}
    runtime = build_runtime(settings.model_copy(update=updates), "api")
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


@contextmanager
def writes(repo: Repository) -> Iterator[list[tuple[str, str]]]:
    """Every INSERT, UPDATE or WITH statement the repository sends, with its parameters
    (on its engine and on the group-committed writes' own, when it has one)."""
    seen: list[tuple[str, str]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        head = statement.lstrip()[:6].upper()
        if head in ("INSERT", "UPDATE", "WITH R"):
            seen.append((statement, repr(params)))

    engines = {repo.engine.sync_engine, repo.batch_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def of_execution(seen: list[tuple[str, str]], execution_id: uuid.UUID) -> list[str]:
    """The statements that name this execution (PG's JSON rows hold its id as text)."""
    keys = (str(execution_id), execution_id.hex)
    return [s for s, params in seen if any(k in params for k in keys)]


def dialect(runtime: Runtime) -> str:
    return runtime.repo.dialect


def checkpointed(runtime: Runtime, statements: list[str]) -> bool:
    """Whether the execution was written again after its insert (a checkpoint: on SQLite an
    UPDATE, on Postgres a second statement)."""
    if dialect(runtime) == "postgresql":
        return len(statements) >= 2
    return any(s.lstrip().upper().startswith("UPDATE") for s in statements)


async def submit(runtime: Runtime, workflow: dict[str, Any], **fields: Any) -> Any:
    request = RunRequest(workflow=workflow, mode="immediate", input={"n": 21}, **fields)
    return (await runtime.manager.submit(request)).started.record


async def test_a_pure_run_is_one_insert_with_its_events_and_steps(runtime: Runtime) -> None:
    with writes(runtime.repo) as seen:
        record = await submit(runtime, THREE)
    assert record.status == Status.COMPLETED and record.result == {"double": 42}
    statements = of_execution(seen, record.id)
    assert not any(s.lstrip().upper().startswith("UPDATE") for s in statements), statements
    if dialect(runtime) == "postgresql":
        assert len(statements) == 1, statements  # row, events and steps in one statement
    stored = await runtime.repo.get_execution(record.id)
    assert stored.status == Status.COMPLETED and stored.result == {"double": 42}
    assert stored.lease_owner is None
    assert stored.started_at is not None and stored.completed_at is not None
    assert stored.created_at <= stored.started_at <= stored.completed_at
    assert [(s.node_id, s.status) for s in stored.steps] == [
        ("a", "completed"),
        ("b", "completed"),
        ("c", "completed"),
    ]
    assert stored.progress_done == 3
    events = await runtime.repo.events_after(record.id, 0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert stored.last_seq == len(events)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["execution.created", "execution.started"]
    assert kinds[-1] == "execution.completed"
    assert kinds.count("step.completed") == 3
    times = [e.created_at for e in events]
    assert times == sorted(times) and times[0] == stored.created_at


async def test_a_run_with_an_idempotency_key_is_created_before_it_runs(runtime: Runtime) -> None:
    with writes(runtime.repo) as seen:
        record = await submit(runtime, THREE, idempotency_key=f"k-{uuid.uuid4()}")
    assert record.status == Status.COMPLETED
    # Created (a second request must find it while it runs), then checkpointed.
    assert checkpointed(runtime, of_execution(seen, record.id))
    replay = await submit(runtime, THREE, idempotency_key=record.idempotency_key)
    assert replay.id == record.id


async def test_a_run_longer_than_a_flush_is_stored_at_its_first_flush(runtime: Runtime) -> None:
    with writes(runtime.repo) as seen:
        record = await submit(runtime, SLOW)
    assert record.status == Status.COMPLETED
    statements = of_execution(seen, record.id)
    # Stored while it waited (visible from then on), then written as any run is.
    assert statements[0].lstrip().upper().startswith(("INSERT", "WITH"))
    assert checkpointed(runtime, statements)
    events = await runtime.repo.events_after(record.id, 0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events][-1] == "execution.completed"


async def test_a_pure_run_past_the_budget_is_stored_and_promoted(
    settings: Settings, tmp_path: Path
) -> None:
    runtime = build_runtime(
        settings.model_copy(update={"schedule_tick_ms": 0, "immediate_budget_ms": 150}), "api"
    )
    await runtime.start()
    try:
        record = await submit(runtime, SLOW)
        assert record.status == Status.PENDING and record.execution_mode == "queued"
        stored = await runtime.repo.get_execution(record.id)
        assert stored.status == Status.PENDING and stored.lease_owner is None
        kinds = [e.type for e in await runtime.repo.events_after(record.id, 0)]
        assert kinds[:2] == ["execution.created", "execution.started"]
        assert kinds[-1] == "execution.promoted"
        assert record.id in await runtime.queue.live([record.id])  # handed to the workers
    finally:
        await runtime.close()


async def test_every_event_of_a_pure_run_gets_its_delivery(runtime: Runtime) -> None:
    sub = await subscribe(runtime.repo.engine)
    store = SubscriptionStore(runtime.repo.engine)
    await SubscriptionCache(store, runtime.repo.outbox, 1000).load()
    record = await submit(runtime, THREE)
    events = await runtime.repo.events_after(record.id, 0)
    async with runtime.repo.engine.connect() as conn:
        ranges = (
            await conn.execute(
                select(event_deliveries.c.seq, event_deliveries.c.last_seq)
                .where(event_deliveries.c.subscription_id == sub)
                .where(event_deliveries.c.execution_id == record.id)
                .order_by(event_deliveries.c.seq)
            )
        ).all()
        assert await conn.scalar(select(func.count()).select_from(event_deliveries)) == len(ranges)
    # One delivery for the run's one commit, carrying all of its events.
    assert [tuple(r) for r in ranges] == [(events[0].seq, events[-1].seq)]


def test_which_runs_are_written_at_rest() -> None:
    registry = default_registry()

    def pure(nodes: list[dict[str, Any]], **overrides: Any) -> bool:
        return written_at_rest(new_queued({"nodes": nodes}, **overrides), registry)

    transform = {"id": "a", "type": "transform", "params": {}}
    http = {"id": "h", "type": "http.request", "params": {"url": "http://example.com/"}}
    assert pure([transform])
    assert not pure([transform, http])
    # A template inside a loop counts as much as a top-level node.
    assert not pure([{"id": "l", "type": "foreach", "params": {"items": [1], "node": http}}])
    assert not pure([{"id": "w", "type": "workflow", "params": {"workflowId": "x"}}])
    assert not pure([{"id": "u", "type": "no-such-type"}])
    assert not pure([{"id": "h", "type": "human.input", "params": {}}])
    assert not pure([{"id": "e", "type": "wait.event", "params": {"event": "x"}}])
    assert not pure([transform], idempotency_key="k")
    assert not pure([transform], schedule_id=uuid.uuid4())
