"""The same keys, scopes and namespaces on SQLite (migration 0003 in batch mode)."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.config import Settings
from app.main import create_app
from app.store.database import upgrade_schema
from tests.security.conftest import TRANSFORM, bearer, make_key
from tests.servers import run_server


async def test_keys_scopes_and_namespaces_on_sqlite(settings: Settings, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
    await upgrade_schema(url)
    acme = make_key(url, "acme", "read,run", namespace="acme")
    beta = make_key(url, "beta", "read", namespace="beta")
    sqlite = settings.model_copy(update={"database_url": url, "redis_url": None})
    with run_server(create_app(sqlite)) as api:
        async with httpx.AsyncClient(base_url=api, timeout=30) as client:
            assert (await client.get("/executions")).status_code == 401
            ran = await client.post(
                "/workflow/run",
                json={"workflow": TRANSFORM, "mode": "immediate", "input": {"n": 1}},
                headers=bearer(acme),
            )
            assert ran.status_code == 200, ran.text
            path = f"/execution/{ran.json()['executionId']}"
            assert (await client.get(path, headers=bearer(acme))).status_code == 200
            assert (await client.get(path, headers=bearer(beta))).status_code == 404
            denied = await client.post("/workflow/run", json={}, headers=bearer(beta))
            assert denied.status_code == 403
