"""Flow control on the embedded default (SQLite, in-process queue), and in immediate mode."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.flow.conftest import chain, most_at_once
from tests.flow.test_rate_workers import over_the_rate
from tests.servers import run_server_async
from turnout.models import Execution


def embedded(tmp_path: Path) -> IsolatedSettings:
    return IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}",
        log_json=False,
        durable_delay_threshold_ms=500,
    )


async def finished(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        bodies = [(await client.get(f"/execution/{i}")).json() for i in ids]
        if all(b["status"] in ("completed", "failed", "cancelled") for b in bodies):
            return bodies
        assert loop.time() < deadline, [b["status"] for b in bodies]
        await asyncio.sleep(0.05)


def interval(body: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(body["startedAt"]), datetime.fromisoformat(body["completedAt"])


async def test_embedded_concurrency_key_and_rate_limit(tmp_path: Path) -> None:
    limited = chain("tenant-jobs", 150, concurrency={"key": "{{ input.t }}", "limit": 1})
    paced = {
        "name": "paced",
        "nodes": [{"id": "a", "type": "noop"}],
        "rateLimit": {"perSecond": 5, "burst": 1},
    }
    async with (
        run_server_async(create_app(embedded(tmp_path))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        runs = [
            client.post(
                "/workflow/run", json={"workflow": limited, "input": {"t": t}, "mode": "queued"}
            )
            for t in ["x", "y"] * 5
        ] + [
            client.post("/workflow/run", json={"workflow": paced, "input": {}, "mode": "queued"})
            for _ in range(6)
        ]
        answers = await asyncio.gather(*runs)
        assert all(a.status_code == 202 for a in answers)
        ids = [a.json()["executionId"] for a in answers]
        bodies = await finished(client, ids)
    assert all(b["status"] == "completed" for b in bodies)
    keyed = bodies[:10]
    for key in ("x", "y"):
        assert most_at_once([interval(b) for b in keyed if b["input"]["t"] == key]) == 1
    assert most_at_once([interval(b) for b in keyed]) == 2  # the two keys ran side by side
    assert keyed[0]["flowControl"]["concurrency"] == {"key": "x", "limit": 1, "strategy": "queue"}
    starts = [datetime.fromisoformat(b["startedAt"]) for b in bodies[10:]]
    assert not over_the_rate(starts, 5.0, 1)
    assert (max(starts) - min(starts)).total_seconds() >= 5 / 5 - 0.01


async def test_an_immediate_run_over_the_limit_is_queued_with_its_reason(tmp_path: Path) -> None:
    workflow = chain("one-at-a-time", 400, concurrency={"limit": 1})
    async with (
        run_server_async(create_app(embedded(tmp_path))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        first = asyncio.ensure_future(
            client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
        )
        await asyncio.sleep(0.15)  # the first one runs in its request
        second = await client.post(
            "/workflow/run", json={"workflow": workflow, "mode": "immediate"}
        )
        assert second.status_code == 202, second.text
        body = second.json()
        assert body["status"] == "pending" and body["mode"] == "queued"
        assert body["pendingReason"]["code"] == "concurrency_limit"
        assert body["pendingReason"]["limit"] == 1
        reason = Execution.from_dict(body).pending_reason  # the Python client reads it too
        assert reason is not None and reason["code"] == "concurrency_limit"
        page = await client.get(f"/ui/executions/{body['executionId']}")  # and the dashboard
        assert 'data-pending-reason="concurrency_limit"' in page.text, page.text[:2000]
        assert "Waiting for" in page.text
        answered = await first
        assert answered.status_code == 200 and answered.json()["status"] == "completed"
        (done,) = await finished(client, [body["executionId"]])
    assert done["status"] == "completed" and "pendingReason" not in done
    assert datetime.fromisoformat(done["startedAt"]) >= datetime.fromisoformat(
        answered.json()["completedAt"]
    )


async def test_a_key_that_does_not_evaluate_is_a_422_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    workflow = chain("keyed", 1, concurrency={"key": "{{ input.tenant }}"})
    async with (
        run_server_async(create_app(embedded(tmp_path))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        missing = await client.post("/workflow/run", json={"workflow": workflow, "input": {}})
        bad = {**workflow, "concurrency": {"key": "{{ steps.a }}", "limit": 0}}
        invalid = await client.post("/workflow/run", json={"workflow": bad, "input": {}})
        listed = (await client.get("/executions")).json()["items"]
    assert missing.status_code == 422, missing.text
    error = missing.json()["error"]
    assert error["code"] == "input_invalid"
    assert error["details"][0]["loc"] == ["workflow", "concurrency", "key"]
    assert "no key 'tenant'" in error["details"][0]["message"]
    assert invalid.status_code == 422
    fields = {d["field"] for d in invalid.json()["error"]["details"]}
    assert fields == {"concurrency.key", "concurrency.limit"}, invalid.json()
    assert listed == []


async def test_an_immediate_newcomer_under_cancel_newest_is_answered_cancelled(
    tmp_path: Path,
) -> None:
    workflow = chain("exclusive", 400, concurrency={"limit": 1, "strategy": "cancel_newest"})
    async with (
        run_server_async(create_app(embedded(tmp_path))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        first = asyncio.ensure_future(
            client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
        )
        await asyncio.sleep(0.15)
        second = await client.post(
            "/workflow/run", json={"workflow": workflow, "mode": "immediate"}
        )
        answered = await first
    assert answered.status_code == 200 and answered.json()["status"] == "completed"
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["status"] == "cancelled" and body["startedAt"] is None
    assert body["error"]["code"] == "concurrency_limit"
