"""The breaker shared through Redis by two worker processes and the API: one process's
failures open it for all, exactly one probe goes through half-open, recovery closes it.
The peer counts what reaches it; each worker's own /metrics tells what it refused."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.circuits.breakers import CircuitBreakers, default_policy
from app.circuits.redis_store import RedisCircuits
from app.config import Settings
from app.errors import StepError
from app.main import create_app
from app.nodes.base import NodeContext, Services
from app.nodes.http import HttpParams, HttpRequestNode
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async
from tests.support.flaky_peer import FlakyPeer, flaky_peer
from tests.support.workers import worker_process

COOLDOWN_MS = 3_000  # long enough for 8 fast failures on two workers, even when loaded
ENV = {"TURNOUT_CIRCUIT_FAILURES": "3", "TURNOUT_CIRCUIT_COOLDOWN_MS": str(COOLDOWN_MS)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def shared_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"circuit_failures": 3, "circuit_cooldown_ms": COOLDOWN_MS})


@pytest.fixture
def peer() -> Iterator[FlakyPeer]:
    with flaky_peer() as p:
        yield p


@pytest.fixture
def workers(shared_settings: Settings) -> Iterator[list[str]]:
    """Two worker processes, one job at a time each (so concurrent runs spread over both),
    each with its own /metrics port; yields those ports' URLs."""
    ports = [free_port(), free_port()]
    env = {**ENV, "TURNOUT_WORKER_MAX_JOBS": "1"}
    with (
        worker_process(shared_settings, TURNOUT_WORKER_METRICS_PORT=str(ports[0]), **env),
        worker_process(shared_settings, TURNOUT_WORKER_METRICS_PORT=str(ports[1]), **env),
    ):
        yield [f"http://127.0.0.1:{p}/metrics" for p in ports]


@pytest.fixture
async def client(
    shared_settings: Settings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        run_server_async(create_app(shared_settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as c,
    ):
        yield c


async def run_queued(client: httpx.AsyncClient, url: str, n: int = 1) -> list[dict[str, Any]]:
    """Submit `n` queued runs at once and wait for all of them to end."""
    workflow = {"nodes": [{"id": "call", "type": "http.request", "params": {"url": url}}]}
    answers = await asyncio.gather(
        *(
            client.post("/workflow/run", json={"workflow": workflow, "mode": "queued"})
            for _ in range(n)
        )
    )
    ids = [a.json()["executionId"] for a in answers]
    done: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    for execution_id in ids:
        while True:
            body = (await client.get(f"/execution/{execution_id}")).json()
            if body["status"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert body["status"] in ("completed", "failed"), body
        done.append(body)
    return done


def codes(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted((b["error"] or {}).get("code", "ok") for b in bodies)


async def circuit(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = (await client.get("/circuits")).json()
    assert answer["shared"] is True
    [item] = answer["items"]
    return dict(item)


def counter(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name}{{")
    )


async def wait_for_probe(item: dict[str, Any]) -> None:
    probe_at = datetime.fromisoformat(item["nextProbeAt"]).timestamp()
    await asyncio.sleep(max(0.0, probe_at - time.time()) + 0.05)


async def test_two_workers_share_one_breaker(
    client: httpx.AsyncClient, peer: FlakyPeer, workers: list[str]
) -> None:
    url = f"{peer.url}/call"
    for _ in range(3):
        assert codes(await run_queued(client, url)) == ["http_status"]
    assert peer.hits == 3
    item = await circuit(client)
    assert item["state"] == "open" and item["failures"] == 3 and item["opens"] == 1

    # Open for every process: 8 runs over both workers, none reaches the peer.
    assert codes(await run_queued(client, url, 8)) == ["circuit_open"] * 8
    assert peer.hits == 3

    # Half-open: of 6 runs at once (the probe is slow), exactly one reaches the peer.
    peer.delay_s = 0.5
    await wait_for_probe(item)
    assert codes(await run_queued(client, url, 6)) == ["circuit_open"] * 5 + ["http_status"]
    assert peer.hits == 4
    item = await circuit(client)
    assert item["state"] == "open" and item["opens"] == 2

    # Recovery: the next probe closes it, and every run reaches the peer again.
    peer.status, peer.delay_s = 200, 0.0
    await wait_for_probe(item)
    assert codes(await run_queued(client, url)) == ["ok"]
    assert codes(await run_queued(client, url, 6)) == ["ok"] * 6
    assert peer.hits == 11
    assert (await circuit(client))["state"] == "closed"

    # Each worker refused some calls itself: the state they acted on was the shared one.
    async with httpx.AsyncClient(timeout=5) as scrape:
        texts = [(await scrape.get(w)).text for w in workers]
    rejected = [counter(t, "turnout_circuit_rejected_total") for t in texts]
    assert sum(rejected) == 13 and all(r > 0 for r in rejected), rejected
    assert sum(counter(t, "turnout_circuit_opens_total") for t in texts) == 2
    api_metrics = (await client.get("/metrics")).text
    assert 'turnout_circuit_state{host="' in api_metrics


async def test_the_api_and_workers_see_the_same_state_and_reset(
    client: httpx.AsyncClient, peer: FlakyPeer, workers: list[str]
) -> None:
    """Immediate runs (in the API process) open it; queued runs (workers) are refused;
    a reset through the API closes it for the workers too."""
    workflow = {
        "nodes": [{"id": "call", "type": "http.request", "params": {"url": f"{peer.url}/call"}}]
    }
    for _ in range(3):
        answer = await client.post(
            "/workflow/run", json={"workflow": workflow, "mode": "immediate"}
        )
        assert answer.json()["error"]["code"] == "http_status"
    assert codes(await run_queued(client, f"{peer.url}/call", 2)) == ["circuit_open"] * 2
    assert peer.hits == 3
    host = peer.url.removeprefix("http://")
    reset = await client.post(f"/circuits/{host}/reset")
    assert reset.status_code == 200 and reset.json() == {"reset": [host]}
    peer.status = 200
    assert codes(await run_queued(client, f"{peer.url}/call", 2)) == ["ok"] * 2
    assert peer.hits == 5


async def test_with_redis_away_calls_go_through_and_the_list_is_a_503(
    peer: FlakyPeer, shared_settings: Settings, engine: AsyncEngine
) -> None:
    """The breaker protects the target; it must not stop calls when its own store is away."""
    dead = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    settings = IsolatedSettings(http_allow_private=True, circuit_failures=1, log_json=False)
    breakers = CircuitBreakers(RedisCircuits(dead, "unused"), default_policy(settings))
    async with httpx.AsyncClient() as http:
        ctx = NodeContext(
            execution_id="e",
            node_id="n",
            step_key="n",
            attempt=1,
            services=Services(settings, http, circuits=breakers),
            scope={},
        )
        for _ in range(3):
            with pytest.raises(StepError) as failed:
                await HttpRequestNode().run(
                    ctx, HttpParams.model_validate({"url": f"{peer.url}/call"})
                )
            assert failed.value.code == "http_status"
    assert peer.hits == 3  # one failure would open a working breaker: this one never could
    await dead.aclose()
    # The API says so plainly when its Redis is away: a 503, not a 500 or an empty list.
    away = shared_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with (
        run_server_async(create_app(away)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        answer = await http.get("/circuits")
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert (await http.get("/metrics")).status_code == 200  # gauges just not refreshed
