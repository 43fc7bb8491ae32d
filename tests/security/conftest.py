"""Security tests: a real uvicorn on the session's Postgres, keys made as `turnout keys` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import api_settings, api_url, client  # noqa: F401 (fixtures)

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


async def run(http: httpx.AsyncClient, key: str, workflow: Any = None, **body: Any) -> Any:
    answer = await http.post(
        "/workflow/run",
        json={"workflow": workflow or TRANSFORM, "mode": "immediate", "input": {"n": 1}, **body},
        headers=bearer(key),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
