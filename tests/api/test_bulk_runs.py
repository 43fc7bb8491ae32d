"""`POST /workflow/runs`: many runs in one request, one commit, one result per run."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.api.test_queued_runs import chain, wait_for_status
from tests.support.workers import running_worker

TRIPLE = chain(3)


def run(**extra: Any) -> dict[str, Any]:
    return {"workflow": TRIPLE, **extra}


async def count_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM workflow_executions"))
    return int(count or 0)


async def test_each_run_gets_its_own_result_and_bad_ones_sink_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    runs = [
        run(input={"n": 1}),
        {"workflow": {"nodes": [{"id": "a", "type": "no.such.type"}]}},  # workflow_invalid
        {"workflowId": "not-registered"},  # 404
        {"workflow": TRIPLE, "options": {"priority": 500}},  # 422 request_invalid
        "not an object",  # 422
        run(mode="immediate"),  # a bulk request queues: 422
        run(input={"n": 2}, mode="queued"),
    ]
    answer = await client.post("/workflow/runs", json={"runs": runs})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    statuses = [r["httpStatus"] for r in body["results"]]
    assert statuses == [202, 422, 404, 422, 422, 422, 202]
    assert [r["index"] for r in body["results"]] == list(range(7))
    assert (body["created"], body["refused"]) == (2, 5)
    assert body["results"][1]["error"]["code"] == "workflow_invalid"
    assert body["results"][2]["error"]["code"] == "workflow_not_found"
    priority = body["results"][3]["error"]["details"][0]
    assert priority["field"] == "runs[3].options.priority"
    assert priority["loc"] == ["body", "runs", 3, "options", "priority"]
    assert body["results"][5]["error"]["details"][0]["code"] == "bulk_queued"
    assert await count_rows(engine) == 2  # the refused runs wrote nothing
    first = body["results"][0]["execution"]
    assert first["status"] == "pending" and first["mode"] == "queued"
    assert first["links"]["self"] == f"/execution/{first['executionId']}"
    async with running_worker(settings):
        for item in (body["results"][0], body["results"][6]):
            done = await wait_for_status(client, item["execution"]["executionId"], {"completed"})
            assert done["result"] == {"last": 2}
            assert done["requestedMode"] in ("auto", "queued")


async def test_idempotency_keys_are_per_run(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    key = f"bulk-{uuid.uuid4().hex}"
    runs = [
        run(idempotencyKey=key, input={"n": 1}),
        run(idempotencyKey=key, input={"n": 1}),  # the same run again: the same execution
        run(idempotencyKey=key, input={"n": 2}),  # another body with the key: 409
        run(),
    ]
    body = (await client.post("/workflow/runs", json={"runs": runs})).json()
    results = body["results"]
    assert [r["httpStatus"] for r in results] == [202, 202, 409, 202]
    assert [r["created"] for r in results] == [True, False, False, True]
    assert results[0]["execution"]["executionId"] == results[1]["execution"]["executionId"]
    assert results[2]["error"]["code"] == "idempotency_conflict"
    # A later request with the key gets the same execution (single route and bulk alike).
    again = (await client.post("/workflow/runs", json={"runs": runs[:1]})).json()
    assert again["results"][0]["execution"]["executionId"] == results[0]["execution"]["executionId"]
    assert again["results"][0]["created"] is False
    single = await client.post(
        "/workflow/run",
        json={"workflow": TRIPLE, "input": {"n": 1}},
        headers={"Idempotency-Key": key},
    )
    assert single.status_code == 202
    assert single.json()["executionId"] == results[0]["execution"]["executionId"]
    assert await count_rows(engine) == 2


@pytest.mark.parametrize(("size", "status"), [(0, 422), (1000, 200), (1001, 422)])
async def test_up_to_1000_runs(
    client: httpx.AsyncClient, engine: AsyncEngine, size: int, status: int
) -> None:
    answer = await client.post("/workflow/runs", json={"runs": [run()] * size})
    assert answer.status_code == status, answer.text[:300]
    if status == 422:
        assert answer.json()["error"]["code"] == "request_invalid"
        assert await count_rows(engine) == 0
    else:
        assert answer.json()["created"] == size
        assert await count_rows(engine) == size
