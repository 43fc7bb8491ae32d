"""Per-run limits over a real server: a run past one fails with `limit_exceeded` naming it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from app.config import Settings


@pytest.fixture
def api_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update=getattr(request, "param", {}))


def chain(n: int, **extra: Any) -> dict[str, Any]:
    nodes = [{"id": f"s{i}", "type": "transform", "params": {"i": i}} for i in range(n)]
    for i in range(1, n):
        nodes[i]["dependsOn"] = [f"s{i - 1}"]
    return {"nodes": nodes, **extra}


async def run(client: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_max_steps_fails_the_run_and_names_the_limit(client: httpx.AsyncClient) -> None:
    done = await run(client, chain(3, limits={"maxSteps": 2}))
    assert done["status"] == "failed"
    assert done["error"]["code"] == "limit_exceeded" and done["error"]["limit"] == "maxSteps"
    assert "maxSteps = 2" in done["error"]["message"]
    ran = [s["nodeId"] for s in done["steps"] if s["status"] == "completed"]
    assert ran == ["s0", "s1"]
    assert (await run(client, chain(2, limits={"maxSteps": 2})))["status"] == "completed"


async def test_max_steps_counts_foreach_items(client: httpx.AsyncClient) -> None:
    foreach = {
        "id": "each",
        "type": "foreach",
        "params": {"items": [1, 2, 3, 4], "node": {"type": "transform", "params": {}}},
    }
    done = await run(client, {"nodes": [foreach], "limits": {"maxSteps": 3}})
    assert done["status"] == "failed" and done["error"]["limit"] == "maxSteps"


async def test_max_output_bytes(client: httpx.AsyncClient) -> None:
    big = {"nodes": [{"id": "a", "type": "transform", "params": {"s": "x" * 500}}]}
    done = await run(client, {**big, "limits": {"maxOutputBytes": 100}})
    assert done["status"] == "failed" and done["error"]["limit"] == "maxOutputBytes"


async def test_max_duration_ms(client: httpx.AsyncClient) -> None:
    slow = {"nodes": [{"id": "a", "type": "delay", "params": {"ms": 10_000}}]}
    started = time.monotonic()
    done = await run(client, {**slow, "limits": {"maxDurationMs": 300}})
    assert done["status"] == "failed" and done["error"]["limit"] == "maxDurationMs"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("api_settings", [{"max_steps": 1}], indirect=True)
async def test_service_wide_default_applies_unless_the_workflow_sets_its_own(
    client: httpx.AsyncClient,
) -> None:
    assert (await run(client, chain(2)))["error"]["limit"] == "maxSteps"
    assert (await run(client, chain(2, limits={"maxSteps": 5})))["status"] == "completed"


async def test_a_bad_limit_is_a_422(client: httpx.AsyncClient) -> None:
    answer = await client.post("/workflow/run", json={"workflow": chain(1, limits={"maxSteps": 0})})
    assert answer.status_code == 422
