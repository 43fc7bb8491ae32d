"""Events and children stay in their namespace; POST /events needs the `run` scope."""

from __future__ import annotations

import asyncio

import httpx

from app.config import Settings
from tests.composition.flows import wait_for
from tests.security.conftest import bearer, make_key
from tests.support.workers import running_worker

WAITER = {
    "nodes": [{"id": "e", "type": "wait.event", "params": {"name": "deploy", "timeout": 60000}}],
    "output": "{{ e.data }}",
}
TRIGGERED = {
    "name": "on-deploy",
    "version": "1",
    "on": {"event": "deploy"},
    "nodes": [{"id": "t", "type": "noop"}],
}


async def test_an_event_reaches_only_its_own_namespace(
    client: httpx.AsyncClient, db_url: str, settings: Settings
) -> None:
    acme = make_key(db_url, "acme", "read,run,admin", namespace="acme")
    beta = make_key(db_url, "beta", "read,run", namespace="beta")
    reader = make_key(db_url, "reader", "read", namespace="beta")
    registered = await client.post("/workflows", json=TRIGGERED, headers=bearer(acme))
    assert registered.status_code in (200, 201), registered.text
    async with running_worker(settings):
        started = await client.post(
            "/workflow/run", json={"workflow": WAITER}, headers=bearer(acme)
        )
        execution_id = started.json()["executionId"]
        acme_client = httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(acme))
        async with acme_client:
            await wait_for(acme_client, execution_id, {"waiting"})
            refused = await client.post("/events", json={"name": "deploy"}, headers=bearer(reader))
            assert refused.status_code == 403, refused.text
            other = await client.post(
                "/events", json={"name": "deploy", "data": "beta", "id": "d1"},
                headers=bearer(beta),
            )  # fmt: skip
            assert other.status_code == 200 and other.json()["runs"] == []
            await asyncio.sleep(0.5)
            still = (await acme_client.get(f"/execution/{execution_id}")).json()
            assert still["status"] == "waiting"
            mine = await client.post(
                "/events", json={"name": "deploy", "data": "acme", "id": "d1"},
                headers=bearer(acme),
            )  # fmt: skip
            assert mine.status_code == 200 and mine.json()["data"] == "acme"  # ids per namespace
            assert len(mine.json()["runs"]) == 1
            done = await wait_for(acme_client, execution_id, {"completed", "failed"})
    assert done["result"] == "acme"
