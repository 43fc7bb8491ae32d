"""Analytics: the numbers a user reads off `GET /analytics/workflows` and the time series,
on Postgres (through the API) and on SQLite (the same store)."""

from __future__ import annotations

import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.analytics import AnalyticsStore, Window
from app.store.tables import workflow_executions

NOW = datetime.now(UTC).replace(microsecond=0)
# (status, duration ms, queue wait ms, step retries, error code)
RUNS: list[tuple[str, float, float, int, str | None]] = [
    ("completed", 100, 10, 0, None),
    ("completed", 200, 20, 1, None),
    ("completed", 300, 30, 0, None),
    ("completed", 1000, 40, 2, None),
    ("failed", 50, 0, 3, "http_status"),
    ("failed", 60, 0, 3, "http_status"),
    ("failed", 70, 0, 0, "timeout"),
    ("cancelled", 80, 0, 0, None),
]


def rows(name: str, version: str | None, start: datetime) -> list[dict[str, Any]]:
    out = []
    for i, (status, dur, wait, retries, code) in enumerate(RUNS):
        created = start + timedelta(minutes=i * 20)  # 8 runs over 2 h 40 m: 3 hourly buckets
        began = created + timedelta(milliseconds=wait)
        out.append(
            {
                "id": uuid.uuid4(),
                "workflow_name": name,
                "workflow_version": version,
                "status": status,
                "execution_mode": "queued",
                "created_at": created,
                "updated_at": created,
                "started_at": began,
                "completed_at": began + timedelta(milliseconds=dur),
                "input": {},
                "definition": {},
                "error": {"code": code, "message": "x"} if code else None,
                "step_retries": retries,
                "cpu_ms": 5.0,
            }
        )
    return out


def expected_percentiles() -> dict[str, float]:
    durations = [d for _, d, *_ in RUNS]
    q = statistics.quantiles(durations, n=100, method="inclusive")  # = percentile_cont
    return {"p50": statistics.median(durations), "p95": q[94], "p99": q[98]}


async def fill(engine: AsyncEngine) -> datetime:
    start = (NOW - timedelta(hours=5)).replace(minute=0, second=0)
    async with engine.begin() as conn:
        await conn.execute(insert(workflow_executions), rows("orders", "2", start))
        await conn.execute(insert(workflow_executions), rows("orders", "1", start)[:2])
        old = rows("orders", "2", NOW - timedelta(days=30))  # outside the default range
        await conn.execute(insert(workflow_executions), old)
    return start


def check_item(item: dict[str, Any]) -> None:
    assert item["counts"]["completed"] == 4
    assert item["counts"]["failed"] == 3
    assert item["counts"]["cancelled"] == 1
    assert item["successRate"] == 0.5
    for key, value in expected_percentiles().items():
        assert item["durationMs"][key] == pytest.approx(value, abs=0.01), key
    assert item["queueWaitMs"]["mean"] == pytest.approx(12.5, abs=0.01)
    assert item["retriesPerRun"] == pytest.approx(9 / 8)
    assert item["topErrors"] == [
        {"code": "http_status", "count": 2},
        {"code": "timeout", "count": 1},
    ]
    assert item["usage"]["cpuMsMean"] == pytest.approx(5.0)


async def test_workflow_analytics_per_version_over_the_last_week(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await fill(engine)
    answer = await client.get("/analytics/workflows")
    assert answer.status_code == 200, answer.text
    items = {(i["workflow"], i["version"]): i for i in answer.json()["items"]}
    assert set(items) == {("orders", "1"), ("orders", "2")}
    check_item(items[("orders", "2")])
    assert items[("orders", "1")]["counts"]["completed"] == 2


async def test_workflow_timeseries_by_hour(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    start = await fill(engine)
    answer = await client.get("/analytics/workflows/orders/timeseries", params={"bucket": "1h"})
    assert answer.status_code == 200, answer.text
    points = answer.json()["points"]
    assert [p["start"] for p in points] == [
        (start + timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in range(3)
    ]
    # 00, 20, 40 minutes in each hour; version 1's two runs land in the first hour.
    assert [sum(p["counts"].values()) for p in points] == [5, 3, 2]
    assert points[0]["durationMs"]["p50"] == pytest.approx(200)


async def test_analytics_refuse_an_unknown_bucket_and_a_reversed_range(
    client: httpx.AsyncClient,
) -> None:
    bad = await client.get("/analytics/workflows/orders/timeseries", params={"bucket": "1w"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"]
    reversed_range = await client.get(
        "/analytics/workflows",
        params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    )
    assert reversed_range.status_code == 422
    assert "after" in reversed_range.json()["error"]["message"]


async def test_sqlite_computes_the_same_analytics(sqlite_engine: AsyncEngine) -> None:
    start = await fill(sqlite_engine)
    store = AnalyticsStore(sqlite_engine)
    items = await store.workflow_stats(Window(NOW - timedelta(days=7), NOW))
    check_item(next(i for i in items if i["version"] == "2"))
    points = await store.workflow_timeseries(Window(start, NOW, "orders"), 3600)
    assert [p["start"] for p in points] == [start + timedelta(hours=h) for h in range(3)]
    assert [p["total"] for p in points] == [5, 3, 2]
