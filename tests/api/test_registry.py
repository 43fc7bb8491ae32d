"""The workflow registry: names with their latest version, paginated; versions; delete."""

from __future__ import annotations

from typing import Any

import httpx


def definition(name: str, version: str, value: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "nodes": [{"id": "a", "type": "noop", "params": {"value": value}}],
    }


async def register(client: httpx.AsyncClient, name: str, version: str, value: int = 1) -> None:
    response = await client.post("/workflows", json=definition(name, version, value))
    assert response.status_code == 201, response.text


async def test_list_shows_each_name_once_with_its_latest_version(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "billing", "1")
    await register(client, "billing", "2")
    await register(client, "alerts", "1.0")
    body = (await client.get("/workflows")).json()
    assert body["nextCursor"] is None
    assert [(i["name"], i["latestVersion"], i["versionCount"]) for i in body["items"]] == [
        ("alerts", "1.0", 1),
        ("billing", "2", 2),
    ]
    assert all("definition" not in item for item in body["items"])


async def test_list_is_paginated_by_cursor(client: httpx.AsyncClient) -> None:
    for name in ("w1", "w2", "w3", "w4", "w5"):
        await register(client, name, "1")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/workflows", params=params)).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [item["name"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["w1", "w2", "w3", "w4", "w5"]
    assert pages == 3


async def test_versions_lists_every_version_newest_first(client: httpx.AsyncClient) -> None:
    for version in ("1", "2", "3"):
        await register(client, "report", version)
    body = (await client.get("/workflows/report/versions")).json()
    assert body["name"] == "report"
    assert [item["version"] for item in body["items"]] == ["3", "2", "1"]
    missing = await client.get("/workflows/nothing/versions")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "workflow_not_found"


async def test_delete_one_version_keeps_the_others(client: httpx.AsyncClient) -> None:
    await register(client, "etl", "1", value=1)
    await register(client, "etl", "2", value=2)
    response = await client.delete("/workflows/etl", params={"version": "2"})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "etl", "deletedVersions": ["2"]}
    latest = (await client.get("/workflows/etl")).json()
    assert latest["version"] == "1"
    assert latest["versions"] == ["1"]
    again = await client.delete("/workflows/etl", params={"version": "2"})
    assert again.status_code == 404


async def test_delete_every_version_leaves_executions_their_snapshot(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "nightly", "1", value=7)
    run = await client.post("/workflows/nightly/run", json={"mode": "immediate"})
    assert run.status_code == 200, run.text
    execution_id = run.json()["executionId"]

    response = await client.delete("/workflows/nightly")
    assert response.status_code == 200
    assert response.json()["deletedVersions"] == ["1"]
    assert (await client.get("/workflows/nightly")).status_code == 404
    names = [item["name"] for item in (await client.get("/workflows")).json()["items"]]
    assert "nightly" not in names

    execution = (await client.get(f"/execution/{execution_id}")).json()
    assert execution["status"] == "completed"
    assert execution["result"] == {"a": 7}
    assert execution["workflowVersion"] == "1"
