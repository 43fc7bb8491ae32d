"""API keys and scopes over a real server: 401 without a key, 403 without the scope."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.security.conftest import bearer, make_key, run, turnout_db
from turnout import AsyncClient


async def test_no_keys_means_open_as_before(client: httpx.AsyncClient) -> None:
    answer = await client.get("/executions")
    assert answer.status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_once_a_key_exists_a_missing_or_bad_key_is_401(
    client: httpx.AsyncClient, db_url: str
) -> None:
    make_key(db_url, "ci", "read")
    for headers in ({}, bearer("tno_not-a-key"), {"Authorization": "Basic abc"}):
        answer = await client.get("/executions", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    # A key in the URL is no key.
    assert (await client.get("/executions?api_key=x")).status_code == 401
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/readyz")).status_code == 401
    assert (await client.get("/healthz")).status_code == 200


async def test_each_scope_opens_only_its_verbs(client: httpx.AsyncClient, db_url: str) -> None:
    reader = make_key(db_url, "reader", "read")
    runner = make_key(db_url, "runner", "read,run")
    operator = make_key(db_url, "operator", "read,control")

    refused = await client.post(
        "/workflow/run", json={"workflow": {"nodes": []}}, headers=bearer(reader)
    )
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "forbidden" and "'run'" in error["message"]

    done = await run(client, runner)
    execution = f"/execution/{done['executionId']}"
    assert (await client.get(execution, headers=bearer(reader))).status_code == 200
    assert (await client.post(f"{execution}/retry", headers=bearer(runner))).status_code == 403
    # The operator may control (409: a completed run cannot be cancelled) but not run.
    assert (await client.post(f"{execution}/cancel", headers=bearer(operator))).status_code == 409
    assert (
        await client.post("/workflow/run", json={"workflow": {}}, headers=bearer(operator))
    ).status_code == 403
    registered = await client.post(
        "/workflows", json={"name": "w", "version": "1", "nodes": []}, headers=bearer(operator)
    )
    assert registered.status_code == 403  # the registry needs admin


async def test_admin_scope_may_do_everything(client: httpx.AsyncClient, db_url: str) -> None:
    admin = make_key(db_url, "root", "admin")
    await run(client, admin)
    assert (await client.get("/metrics", headers=bearer(admin))).status_code == 200


async def test_revoked_key_is_401_and_auth_stays_on(client: httpx.AsyncClient, db_url: str) -> None:
    key = make_key(db_url, "ci", "read")
    assert (await client.get("/executions", headers=bearer(key))).status_code == 200
    revoked = turnout_db(db_url, "keys", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert (await client.get("/executions", headers=bearer(key))).status_code == 401
    assert (await client.get("/executions")).status_code == 401


async def test_keys_are_stored_only_hashed(db_url: str, engine: AsyncEngine) -> None:
    key = make_key(db_url, "ci", "read,run", namespace="acme")
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0].values())
    assert key not in stored and key[8:] not in stored
    listed = turnout_db(db_url, "keys", "ls", "-o", "json")
    assert listed.returncode == 0 and key not in listed.stdout
    assert '"namespace": "acme"' in listed.stdout


def test_cli_refuses_unknown_scope_and_duplicate_name(db_url: str) -> None:
    bad = turnout_db(db_url, "keys", "create", "--name", "x", "--scopes", "read,root")
    assert bad.returncode == 2 and "unknown scope root" in bad.stderr
    make_key(db_url, "x", "read")
    again = turnout_db(db_url, "keys", "create", "--name", "x", "--scopes", "read")
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.fixture
def api_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    extra = getattr(request, "param", {})
    return settings.model_copy(update=extra)


@pytest.mark.parametrize("api_settings", [{"auth": "required"}], indirect=True)
async def test_auth_required_closes_the_api_before_any_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/executions")).status_code == 401
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "api_settings", [{"auth": "required", "open_metrics": True, "open_readyz": True}],
    indirect=True,
)  # fmt: skip
async def test_probes_can_be_opened_by_setting(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/executions")).status_code == 401


async def test_cli_and_python_client_send_turnout_api_key(
    client: httpx.AsyncClient, api_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(db_url, "ci", "read,run")
    await run(client, key)
    listed = turnout_db(
        db_url, "ls", "-o", "json", TURNOUT_URL=api_url, TURNOUT_API_KEY=key
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1
    refused = turnout_db(db_url, "ls", "-o", "json", TURNOUT_URL=api_url)
    assert refused.returncode != 0 and "unauthorized" in refused.stdout + refused.stderr

    monkeypatch.setenv("TURNOUT_API_KEY", key)
    async with AsyncClient(api_url) as python_client:
        seen = [e async for e in python_client.list()]
    assert len(seen) == 1
