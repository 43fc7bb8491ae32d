"""Security tests: a real uvicorn on the session's Postgres, keys made as `turnout keys` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.servers import run_server

TURNOUT = str(Path(sys.executable).with_name("turnout"))
TRANSFORM = {"nodes": [{"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}}]}


def turnout_db(
    db_url: str, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`turnout ARGS...` on the database `db_url` (the commands that talk to it directly)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    return subprocess.run(
        [TURNOUT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**clean, "DATABASE_URL": db_url, **env},
        timeout=60,
        check=False,
    )


def make_key(db_url: str, name: str, scopes: str, namespace: str = "default") -> str:
    made = turnout_db(
        db_url, "keys", "create", "--name", name, "--namespace", namespace,
        "--scopes", scopes, "-o", "json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key: str = json.loads(made.stdout)["key"]
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def api_url(api_settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    with run_server(create_app(api_settings)) as url:
        yield url


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


async def run(client: httpx.AsyncClient, key: str, workflow: Any = None, **body: Any) -> Any:
    answer = await client.post(
        "/workflow/run",
        json={"workflow": workflow or TRANSFORM, "mode": "immediate", "input": {"n": 1}, **body},
        headers=bearer(key),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
