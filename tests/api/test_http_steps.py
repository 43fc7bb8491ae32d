"""`http.request` steps against a real local HTTP server, and the SSRF block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.servers import run_server

peer = FastAPI()
seen_keys: list[str | None] = []


@peer.get("/orders/{order_id}")
async def order(order_id: str, request: Request) -> dict[str, Any]:
    seen_keys.append(request.headers.get("idempotency-key"))
    return {"id": order_id, "total": 150, "lines": [{"sku": "a"}, {"sku": "b"}]}


@pytest.fixture(scope="module")
def peer_url() -> Iterator[str]:
    with run_server(peer) as url:
        yield url


def order_workflow(peer_url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "fetch",
                "type": "http.request",
                "params": {"method": "GET", "url": f"{peer_url}/orders/{{{{ input.orderId }}}}"},
            },
            {"id": "big", "type": "condition", "params": {"expr": "fetch.body.total > 100"}},
        ],
        "output": {"total": "{{ fetch.body.total }}", "big": "{{ big.result }}"},
    }


async def test_http_step_calls_real_server(client: httpx.AsyncClient, peer_url: str) -> None:
    seen_keys.clear()
    response = await client.post(
        "/workflow/run",
        json={
            "workflow": order_workflow(peer_url),
            "input": {"orderId": "o-1"},
            "mode": "immediate",
        },
    )
    body = response.json()
    assert body["status"] == "completed", body
    assert body["result"] == {"total": 150, "big": True}
    fetch = next(s for s in body["steps"] if s["nodeId"] == "fetch")
    assert fetch["output"]["status"] == 200
    assert seen_keys == [f"{body['executionId']}:fetch"]


@pytest.fixture
def blocked_api(settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    strict = settings.model_copy(update={"http_allow_private": False})
    with run_server(create_app(strict)) as url:
        yield url


async def test_private_address_is_blocked(blocked_api: str, peer_url: str) -> None:
    seen_keys.clear()
    async with httpx.AsyncClient(base_url=blocked_api) as client:
        response = await client.post(
            "/workflow/run",
            json={"workflow": order_workflow(peer_url), "input": {"orderId": "o-2"}},
        )
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "ssrf_blocked"
    assert seen_keys == []  # the request never left
