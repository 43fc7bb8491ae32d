"""Circuit breakers behind the keys: read lists, admin resets (audited), namespaces apart."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from tests.security.conftest import bearer, make_key
from tests.support.flaky_peer import FlakyPeer, flaky_peer


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"circuit_failures": 2, "circuit_cooldown_ms": 60_000})


@pytest.fixture
def peer() -> Iterator[FlakyPeer]:
    with flaky_peer() as p:
        yield p


async def test_scopes_audit_and_namespaces(
    client: httpx.AsyncClient, db_url: str, peer: FlakyPeer
) -> None:
    runner = make_key(db_url, "runner", "read,run", namespace="team-a")
    admin = make_key(db_url, "root", "admin", namespace="team-a")
    other = make_key(db_url, "other", "read,run", namespace="team-b")
    workflow = {
        "nodes": [{"id": "c", "type": "http.request", "params": {"url": f"{peer.url}/call"}}]
    }
    for _ in range(2):
        answer = await client.post(
            "/workflow/run",
            json={"workflow": workflow, "mode": "immediate"},
            headers=bearer(runner),
        )
        assert answer.json()["error"]["code"] == "http_status"
    host = peer.url.removeprefix("http://")

    listed = await client.get("/circuits", headers=bearer(runner))
    assert listed.status_code == 200
    assert [(c["host"], c["state"]) for c in listed.json()["items"]] == [(host, "open")]
    # Another namespace neither sees team-a's breaker nor is refused by it.
    assert (await client.get("/circuits", headers=bearer(other))).json()["items"] == []
    answer = await client.post(
        "/workflow/run", json={"workflow": workflow, "mode": "immediate"}, headers=bearer(other)
    )
    assert answer.json()["error"]["code"] == "http_status" and peer.hits == 3
    # ... nor can it reset it (its own namespace has no such breaker).
    assert (await client.get("/circuits")).status_code == 401

    refused = await client.post(f"/circuits/{host}/reset", headers=bearer(runner))
    assert refused.status_code == 403
    done = await client.post(f"/circuits/{host}/reset", headers=bearer(admin))
    assert done.status_code == 200 and done.json() == {"reset": [host]}
    audit = (await client.get("/audit", headers=bearer(admin))).json()["items"]
    assert audit[0]["action"] == "circuit.reset" and audit[0]["target"] == f"circuit/{host}"
    assert audit[0]["actor"] == "root" and audit[0]["namespace"] == "team-a"
    assert (await client.get("/circuits", headers=bearer(runner))).json()["items"] == []
    # A reset that finds nothing is a 404 and is not audited.
    again = await client.post(f"/circuits/{host}/reset", headers=bearer(admin))
    assert again.status_code == 404
    assert len((await client.get("/audit", headers=bearer(admin))).json()["items"]) == len(audit)
