"""Namespaces over a real server: a key sees and touches only its own namespace's things."""

from __future__ import annotations

import asyncio

import httpx
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.database import alembic_config, make_engine
from tests.security.conftest import bearer, make_key, run
from tests.support.sse import frames

WORKFLOW = {
    "name": "order-review",
    "version": "3",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}}],
}


async def test_another_namespaces_execution_is_404_everywhere(
    client: httpx.AsyncClient, db_url: str
) -> None:
    acme = make_key(db_url, "acme-ci", "read,run,control", namespace="acme")
    beta = make_key(db_url, "beta-ci", "read,run,control", namespace="beta")
    mine = await run(client, acme, input={"secret": "s3cr3t"})
    path = f"/execution/{mine['executionId']}"

    assert (await client.get(path, headers=bearer(acme))).status_code == 200
    for method, url in [
        ("GET", path),
        ("GET", f"{path}/stream"),
        ("POST", f"{path}/cancel"),
        ("POST", f"{path}/retry"),
        ("DELETE", path),
        ("GET", f"/api/workflow/execution/{mine['executionId']}"),
        ("GET", f"/ui/executions/{mine['executionId']}"),
    ]:
        answer = await client.request(method, url, headers=bearer(beta))
        assert answer.status_code == 404, (method, url, answer.text)
        assert "s3cr3t" not in answer.text
    missing = await client.get(path, headers=bearer(beta))
    assert missing.json()["error"]["code"] == "execution_not_found"


async def test_lists_show_only_the_keys_namespace_and_admins_choose(
    client: httpx.AsyncClient, db_url: str
) -> None:
    acme = make_key(db_url, "acme-ci", "read,run", namespace="acme")
    beta = make_key(db_url, "beta-ci", "read,run", namespace="beta")
    admin = make_key(db_url, "root", "admin")
    a = (await run(client, acme))["executionId"]
    b = (await run(client, beta))["executionId"]

    def ids(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [item["executionId"] for item in answer.json()["items"]]

    assert ids(await client.get("/executions", headers=bearer(acme))) == [a]
    assert ids(await client.get("/executions", headers=bearer(beta))) == [b]
    assert ids(await client.get("/executions", headers=bearer(admin))) == []  # its own: default
    assert ids(await client.get("/executions?namespace=acme", headers=bearer(admin))) == [a]
    chosen = {**bearer(admin), "X-Turnout-Namespace": "beta"}
    assert ids(await client.get("/executions", headers=chosen)) == [b]
    # A namespace chosen by a key that is not admin is ignored: it stays in its own.
    assert ids(await client.get("/executions?namespace=beta", headers=bearer(acme))) == [a]
    assert (await client.get(f"/execution/{a}", headers=bearer(admin))).status_code == 200


async def test_global_feed_shows_only_the_keys_namespace(
    client: httpx.AsyncClient, db_url: str
) -> None:
    acme = make_key(db_url, "acme-ci", "read,run", namespace="acme")
    beta = make_key(db_url, "beta-ci", "read,run", namespace="beta")
    async with client.stream("GET", "/executions/stream", headers=bearer(beta)) as feed:
        assert feed.status_code == 200
        seen = frames(feed)
        first = asyncio.ensure_future(anext(seen))
        theirs = (await run(client, acme))["executionId"]
        ours = (await run(client, beta))["executionId"]
        frame = await asyncio.wait_for(first, 10)
        got = [frame.data["executionId"]]
        while frame.data["type"] != "execution.completed":
            frame = await asyncio.wait_for(anext(seen), 10)
            got.append(frame.data["executionId"])
    assert set(got) == {ours} and theirs not in got


async def test_registry_is_per_namespace(client: httpx.AsyncClient, db_url: str) -> None:
    admin = make_key(db_url, "root", "admin")
    acme = make_key(db_url, "acme-ci", "read,run", namespace="acme")
    beta = make_key(db_url, "beta-ci", "read,run", namespace="beta")
    in_acme = {**bearer(admin), "X-Turnout-Namespace": "acme"}
    assert (await client.post("/workflows", json=WORKFLOW, headers=in_acme)).status_code == 201
    # The same name and version may exist in another namespace.
    in_beta = {**bearer(admin), "X-Turnout-Namespace": "beta"}
    again = {**WORKFLOW, "nodes": [{"id": "b", "type": "transform", "params": {}}]}
    assert (await client.post("/workflows", json=again, headers=in_beta)).status_code == 201

    ran = await client.post(
        "/workflows/order-review/run", json={"input": {"n": 1}}, headers=bearer(acme)
    )
    assert ran.status_code in (200, 202), ran.text
    assert ran.json()["workflowVersion"] == "3"
    shown = await client.get("/workflows/order-review", headers=bearer(beta))
    assert shown.json()["definition"]["nodes"][0]["id"] == "b"
    listed = await client.get("/workflows", headers=bearer(admin))
    assert listed.json()["items"] == []  # the admin's own namespace (default) has none
    gone = await client.get(
        "/workflows/order-review", headers={**bearer(admin), "X-Turnout-Namespace": "other"}
    )
    assert gone.status_code == 404


async def test_migration_puts_existing_rows_in_default(empty_pg_url: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(empty_pg_url), "0002_recoveries")
    engine: AsyncEngine = make_engine(empty_pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO workflows (id, name, version, definition, created_at) VALUES "
                    "('00000000-0000-0000-0000-000000000001', 'w', '1', '{}', now())"
                )
            )
        await asyncio.to_thread(command.upgrade, alembic_config(empty_pg_url), "head")
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT namespace FROM workflows"))).scalar_one()
        assert found == "default"
    finally:
        await engine.dispose()
