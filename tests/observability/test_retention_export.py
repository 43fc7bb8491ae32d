"""Retention deletes old ended executions with their steps and events; export gives the
whole history of one execution as a JSON document."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.execution.queue import InProcessQueue
from app.execution.reconciler import Reconciler
from app.store.repository import Repository
from app.store.tables import workflow_executions

HELLO = {
    "name": "hello",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"x": 1}},
        {"id": "b", "type": "transform", "params": {"y": "{{ a.x + 1 }}"}, "dependsOn": ["a"]},
    ],
}


async def run(client: httpx.AsyncClient) -> str:
    answer = await client.post("/workflow/run", json={"workflow": HELLO, "input": {}})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["executionId"])


async def test_export_holds_the_execution_its_definition_and_every_event(
    client: httpx.AsyncClient,
) -> None:
    execution_id = await run(client)
    answer = await client.get(f"/execution/{execution_id}/export")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["execution"]["executionId"] == execution_id
    assert [s["nodeId"] for s in doc["execution"]["steps"]] == ["a", "b"]
    assert doc["definition"]["nodes"][0]["id"] == "a"
    types = [e["type"] for e in doc["events"]]
    assert types[0] == "execution.created" and types[-1] == "execution.completed"
    assert [e["seq"] for e in doc["events"]] == list(range(1, len(types) + 1))
    missing = await client.get(f"/execution/{uuid.uuid4()}/export")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"]


async def counts(engine: AsyncEngine, execution_id: str) -> tuple[int, ...]:
    """Rows of the execution, its steps and its events."""
    key = {"id": uuid.UUID(execution_id)}
    out = []
    async with engine.connect() as conn:
        for table, column in (
            ("workflow_executions", "id"),
            ("execution_steps", "execution_id"),
            ("execution_events", "execution_id"),
        ):
            sql = text(f"SELECT count(*) FROM {table} WHERE {column} = :id")
            out.append((await conn.execute(sql, key)).scalar_one())
    return tuple(out)


async def test_the_reconciler_deletes_ended_runs_past_retention_in_batches(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    old = [await run(client) for _ in range(3)]
    recent = await run(client)
    async with engine.begin() as conn:
        await conn.execute(
            update(workflow_executions)
            .where(workflow_executions.c.id.in_([uuid.UUID(i) for i in old]))
            .values(created_at=utcnow() - timedelta(days=31))
        )
    assert await counts(engine, old[0]) == (1, 2, 7)
    policy = settings.model_copy(update={"retention_days": 30, "retention_batch": 2})

    async def nothing(execution_id: uuid.UUID) -> None:
        pass

    queue = InProcessQueue(nothing, 1)
    reconciler = Reconciler(policy, Repository(engine), queue)
    await reconciler.run_once()  # one pass: batches of 2, then 1
    for execution_id in old:
        assert await counts(engine, execution_id) == (0, 0, 0)
        assert (await client.get(f"/execution/{execution_id}")).status_code == 404
    assert await counts(engine, recent) == (1, 2, 7)
    off = Reconciler(settings, Repository(engine), queue)  # TURNOUT_RETENTION_DAYS unset
    assert await off.retention.run_once() == 0
