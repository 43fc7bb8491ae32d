"""Circuit breakers on the embedded backend (SQLite, in-process queue and breaker state),
against a real local peer that fails until told otherwise (counted at the peer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async
from tests.support.flaky_peer import FlakyPeer, flaky_peer

COOLDOWN_MS = 2_000  # long enough for the fast failures, even on a loaded machine


def call(url: str, **params: Any) -> dict[str, Any]:
    return {"nodes": [{"id": "call", "type": "http.request", "params": {"url": url, **params}}]}


@pytest.fixture
def peer() -> Iterator[FlakyPeer]:
    with flaky_peer() as p:
        yield p


@pytest.fixture
async def client(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    options: dict[str, Any] = {
        "http_allow_private": True,
        "circuit_failures": 3,
        "circuit_cooldown_ms": COOLDOWN_MS,
        **getattr(request, "param", {}),
    }
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False, **options
    )
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as c,
    ):
        yield c


async def run(client: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def error_code(body: dict[str, Any]) -> str:
    return str(body["steps"][0]["error"]["code"]) if body["steps"][0]["error"] else ""


async def circuits(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await client.get("/circuits")
    assert answer.status_code == 200, answer.text
    assert answer.json()["shared"] is False
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def metric(text: str, name: str, host: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'host="{host}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_opens_after_n_failures_fails_fast_probes_once_and_closes(
    client: httpx.AsyncClient, peer: FlakyPeer
) -> None:
    workflow = call(f"{peer.url}/call")
    host = peer.url.removeprefix("http://")
    for _ in range(3):
        assert error_code(await run(client, workflow)) == "http_status"
    assert peer.hits == 3
    [circuit] = await circuits(client)
    assert circuit["host"] == host and circuit["state"] == "open"
    assert circuit["failures"] == 3 and circuit["opens"] == 1
    assert circuit["settings"] == {"failures": 3, "windowMs": 60_000, "cooldownMs": COOLDOWN_MS}
    probe_at = datetime.fromisoformat(circuit["nextProbeAt"])

    # Open: later runs fail fast and never reach the peer.
    for _ in range(4):
        body = await run(client, workflow)
        assert error_code(body) == "circuit_open", body
        message = body["steps"][0]["error"]["message"]
        assert host in message and circuit["nextProbeAt"][:19] in message
    assert peer.hits == 3
    text = (await client.get("/metrics")).text
    assert metric(text, "turnout_circuit_state", host) == 2.0
    assert metric(text, "turnout_circuit_opens_total", host) == 1.0
    assert metric(text, "turnout_circuit_rejected_total", host) == 4.0

    # After the cool-down one probe goes through; it fails, so the breaker opens again.
    await asyncio.sleep(max(0.0, probe_at.timestamp() - time.time()) + 0.05)
    assert error_code(await run(client, workflow)) == "http_status"
    assert peer.hits == 4
    [circuit] = await circuits(client)
    assert circuit["state"] == "open" and circuit["opens"] == 2
    assert error_code(await run(client, workflow)) == "circuit_open"
    assert peer.hits == 4

    # The peer recovers: the next probe closes the breaker and runs reach it again.
    peer.status = 200
    await asyncio.sleep(COOLDOWN_MS / 1000 + 0.05)
    assert (await run(client, workflow))["status"] == "completed"
    [circuit] = await circuits(client)
    assert circuit["state"] == "closed" and circuit["failures"] == 0
    assert circuit["openedAt"] is None and circuit["nextProbeAt"] is None
    for _ in range(3):
        assert (await run(client, workflow))["status"] == "completed"
    assert peer.hits == 8
    assert metric((await client.get("/metrics")).text, "turnout_circuit_state", host) == 0.0


async def test_only_target_failures_count(client: httpx.AsyncClient, peer: FlakyPeer) -> None:
    """4xx is the caller's problem and an accepted 5xx is a success: neither opens it."""
    peer.status = 404
    for _ in range(4):
        assert error_code(await run(client, call(f"{peer.url}/call"))) == "http_status"
    peer.status = 503
    for _ in range(4):
        body = await run(client, call(f"{peer.url}/call", acceptStatus=[503]))
        assert body["status"] == "completed"
    assert peer.hits == 8
    [circuit] = await circuits(client)
    assert circuit["state"] == "closed" and circuit["failures"] == 0


async def test_connection_errors_and_timeouts_count(
    client: httpx.AsyncClient, peer: FlakyPeer
) -> None:
    peer.status, peer.delay_s = 200, 1.0
    for _ in range(2):
        assert error_code(await run(client, call(f"{peer.url}/call", timeout=50))) == "http_timeout"
    assert peer.hits == 2
    dead = "http://127.0.0.1:9/"  # discard port: nothing listens, the connection is refused
    for _ in range(3):
        assert error_code(await run(client, call(dead))) == "http_network"
    assert error_code(await run(client, call(dead))) == "circuit_open"
    states = {c["host"]: c["state"] for c in await circuits(client)}
    assert states == {peer.url.removeprefix("http://"): "closed", "127.0.0.1:9": "open"}


async def test_per_node_override_and_opt_out(client: httpx.AsyncClient, peer: FlakyPeer) -> None:
    host = peer.url.removeprefix("http://")
    off = call(f"{peer.url}/call", circuitBreaker=False)
    for _ in range(5):
        assert error_code(await run(client, off)) == "http_status"
    assert peer.hits == 5 and await circuits(client) == []

    own = call(f"{peer.url}/call", circuitBreaker={"failures": 2, "cooldownMs": 60_000})
    for _ in range(2):
        assert error_code(await run(client, own)) == "http_status"
    assert error_code(await run(client, own)) == "circuit_open"
    assert peer.hits == 7
    [circuit] = await circuits(client)
    assert circuit["host"] == host and circuit["state"] == "open"
    assert circuit["name"] == f"{host}|failures=2,windowMs=60000,cooldownMs=60000"
    assert circuit["settings"] == {"failures": 2, "windowMs": 60_000, "cooldownMs": 60_000}
    # The service's own breaker for the host is another one, still closed.
    assert error_code(await run(client, call(f"{peer.url}/call"))) == "http_status"
    assert peer.hits == 8
    # And opting out still reaches the peer while the node's own breaker is open.
    assert error_code(await run(client, off)) == "http_status"
    assert peer.hits == 9


@pytest.mark.parametrize(
    "value",
    [{"failures": 0}, {"windowMs": -1}, {"cooldown": 5}, "yes", {"failures": "many"}],
)
async def test_a_bad_override_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, value: Any
) -> None:
    answer = await client.post(
        "/workflow/run",
        json={"workflow": call("http://example.com/", circuitBreaker=value), "mode": "immediate"},
    )
    assert answer.status_code == 422, answer.text
    assert "circuitBreaker" in answer.text
    assert (await client.get("/executions")).json()["items"] == []


async def test_the_retry_policy_waits_for_the_probe(
    client: httpx.AsyncClient, peer: FlakyPeer
) -> None:
    for _ in range(3):
        await run(client, call(f"{peer.url}/call"))
    peer.status = 200
    started = time.monotonic()
    retrying = call(
        f"{peer.url}/call",
    )
    retrying["nodes"][0]["retry"] = {"maxAttempts": 3, "initialDelay": 10, "maxDelay": 20}
    body = await run(client, retrying)
    assert body["status"] == "completed", body
    step = body["steps"][0]
    assert step["attempt"] == 2  # circuit_open, then the probe (not three fast failures)
    assert time.monotonic() - started >= COOLDOWN_MS / 1000 * 0.8
    assert peer.hits == 4


@pytest.mark.parametrize("client", [{"http_allow_private": False}], indirect=True)
async def test_the_address_guard_stays_in_front(client: httpx.AsyncClient, peer: FlakyPeer) -> None:
    """A refused host never gets a breaker: the list cannot tell about private hosts."""
    for _ in range(4):
        assert error_code(await run(client, call(f"{peer.url}/call"))) == "ssrf_blocked"
    assert peer.hits == 0 and await circuits(client) == []


async def test_reset_closes_by_hand_and_unknown_is_404(
    client: httpx.AsyncClient, peer: FlakyPeer
) -> None:
    host = peer.url.removeprefix("http://")
    for _ in range(3):
        await run(client, call(f"{peer.url}/call"))
    assert (await circuits(client))[0]["state"] == "open"
    page = await client.get("/ui/circuits")
    assert page.status_code == 200 and 'aria-current="page">Circuits' in page.text
    assert f'data-circuit="{host}" data-state="open"' in page.text
    button = f"/circuits/{host.replace(':', '%3A')}/reset"
    assert f'hx-post="{button}"' in page.text
    part = (await client.get("/ui/circuits", params={"part": "true"})).text
    assert "<html" not in part and f'data-circuit="{host}"' in part
    missing = await client.post("/circuits/nowhere.example:443/reset")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "circuit_not_found"
    bad = await client.post("/circuits/a b/reset")
    assert bad.status_code == 422
    done = await client.post(button)  # the dashboard's button
    assert done.status_code == 200, done.text
    assert done.json() == {"reset": [host]}
    assert await circuits(client) == []
    assert "No http.request has called a host yet." in (await client.get("/ui/circuits")).text
    peer.status = 200
    assert (await run(client, call(f"{peer.url}/call")))["status"] == "completed"
    assert peer.hits == 4


@pytest.mark.parametrize("client", [{"http_allow_private": False}], indirect=True)
async def test_a_name_that_does_not_resolve_counts(client: httpx.AsyncClient) -> None:
    """The guard resolves the name first; when it cannot, the target has failed."""
    workflow = call("http://nothing.invalid/")  # .invalid never resolves (RFC 6761)
    for _ in range(3):
        assert error_code(await run(client, workflow)) == "http_network"
    assert error_code(await run(client, workflow)) == "circuit_open"
    [circuit] = await circuits(client)
    assert circuit["host"] == "nothing.invalid:80" and circuit["state"] == "open"
