"""Who did it (the key's name, X-Actor only a label) and the audit log, over a real server."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.security.conftest import bearer, make_key

HUMAN = {
    "nodes": [
        {"id": "approve", "type": "human.input", "params": {"prompt": "ok?"}},
    ],
}


async def waiting_run(client: httpx.AsyncClient, key: str) -> str:
    answer = await client.post(
        "/workflow/run", json={"workflow": HUMAN, "mode": "immediate"}, headers=bearer(key)
    )
    assert answer.status_code in (200, 202), answer.text
    execution_id: str = answer.json()["executionId"]
    got = (await client.get(f"/execution/{execution_id}", headers=bearer(key))).json()
    assert got["status"] == "waiting"
    return execution_id


async def events(engine: AsyncEngine, execution_id: str) -> list[dict[str, Any]]:
    """The execution's stored events (what its stream replays)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT type, data FROM execution_events WHERE execution_id = :id ORDER BY seq"),
            {"id": execution_id},
        )
        return [{"type": r.type, "data": r.data} for r in rows]


async def test_actor_is_the_keys_name_and_x_actor_only_a_label(
    client: httpx.AsyncClient, db_url: str, engine: AsyncEngine
) -> None:
    ops = make_key(db_url, "ops", "read,run,control")
    execution_id = await waiting_run(client, ops)
    given = await client.post(
        f"/execution/{execution_id}/input",
        json={"nodeId": "approve", "data": {"ok": True}},
        headers={**bearer(ops), "X-Actor": "alice"},
    )
    assert given.status_code == 200, given.text
    resumed = [e for e in await events(engine, execution_id) if e["type"] == "execution.resumed"]
    assert resumed and resumed[0]["data"]["requestedBy"] == "ops (alice)"

    other = await waiting_run(client, ops)
    spoofed = {**bearer(ops), "X-Actor": "root"}
    assert (await client.post(f"/execution/{other}/cancel", headers=spoofed)).status_code == 200
    cancelled = await client.get(f"/execution/{other}", headers=bearer(ops))
    assert cancelled.json()["status"] == "cancelled"
    seen = [e["data"].get("requestedBy") for e in await events(engine, other)]
    assert "ops (root)" in seen and "root" not in seen


async def test_x_actor_names_the_caller_while_auth_is_off(client: httpx.AsyncClient) -> None:
    answer = await client.post("/workflow/run", json={"workflow": HUMAN, "mode": "immediate"})
    execution_id = answer.json()["executionId"]
    headers = {"X-Actor": "dashboard"}
    assert (
        await client.post(f"/execution/{execution_id}/cancel", headers=headers)
    ).status_code == 200
    audit = (await client.get("/audit")).json()["items"]
    assert audit[0]["actor"] == "dashboard" and audit[0]["action"] == "execution.cancel"


async def test_audit_log_records_who_what_target_when_and_where(
    client: httpx.AsyncClient, db_url: str
) -> None:
    admin = make_key(db_url, "root", "admin")
    ops = make_key(db_url, "ops", "read,run,control")
    execution_id = await waiting_run(client, ops)
    await client.post(f"/execution/{execution_id}/pause", headers={**bearer(ops), "X-Actor": "al"})
    refused = await client.post(f"/execution/{execution_id}/input", json={}, headers=bearer(ops))
    assert refused.status_code == 422  # a refused request changes nothing: not audited
    workflow = {"name": "w", "version": "1", "nodes": [{"id": "a", "type": "transform"}]}
    assert (
        await client.post("/workflows", json=workflow, headers=bearer(admin))
    ).status_code == 201
    assert (await client.delete("/workflows/w", headers=bearer(admin))).status_code == 200

    assert (await client.get("/audit", headers=bearer(ops))).status_code == 403
    rows = (await client.get("/audit", headers=bearer(admin))).json()["items"]
    assert [(r["action"], r["target"]) for r in rows] == [
        ("workflow.delete", "workflow/w"),
        ("workflow.register", "workflow/w@1"),
        ("execution.pause", f"execution/{execution_id}"),
        ("key.create", "key/ops"),
        ("key.create", "key/root"),
    ]
    pause = rows[2]
    assert pause["actor"] == "ops" and pause["label"] == "al"
    assert pause["source"] == "127.0.0.1" and pause["at"].startswith("20")
    assert rows[3]["actor"] == "cli"

    only = await client.get("/audit?action=execution.pause", headers=bearer(admin))
    assert [r["id"] for r in only.json()["items"]] == [pause["id"]]
    first = (await client.get("/audit?limit=2", headers=bearer(admin))).json()
    second = await client.get(f"/audit?limit=2&cursor={first['nextCursor']}", headers=bearer(admin))
    assert [r["id"] for r in first["items"] + second.json()["items"]] == [r["id"] for r in rows[:4]]

    page = await client.get("/ui/audit?action=execution.pause", headers=bearer(admin))
    assert page.status_code == 200
    assert "execution.pause" in page.text and "workflow.register" not in page.text
    assert (await client.get("/ui/audit", headers=bearer(ops))).status_code == 403
