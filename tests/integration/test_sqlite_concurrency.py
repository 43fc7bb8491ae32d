"""SQLite (the embedded default) under many concurrent writers: they wait, never fail."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.store import database
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async

# Several steps each (several checkpoints), a short delay so runs overlap in time.
WORKFLOW: dict[str, Any] = {
    "nodes": [
        {"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "delay", "params": {"ms": 5}, "dependsOn": ["a"]},
        {"id": "c", "type": "transform", "params": {"n": "{{ a.n + 1 }}"}, "dependsOn": ["b"]},
        {"id": "d", "type": "transform", "params": {"n": "{{ c.n + 1 }}"}, "dependsOn": ["c"]},
    ],
    "output": "{{ d.n }}",
}
EACH = 40  # immediate runs, and as many queued ones, all at once


async def until_done(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = (await client.get(f"/execution/{execution_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_concurrent_runs_on_sqlite_all_complete_without_lock_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loaded machine (one writer waiting longer than the busy timeout for the others) in
    # a few seconds: the busy timeout cut to 1 ms. Writers of one process must take turns
    # rather than rely on it.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 1)
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False
    )
    caplog.set_level(logging.WARNING)
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):

        async def run(i: int, mode: str) -> httpx.Response:
            body = {"workflow": WORKFLOW, "input": {"n": i}, "mode": mode}
            return await client.post("/workflow/run", json=body)

        requests = [(i, m) for i in range(EACH) for m in ("immediate", "queued")]
        answers = await asyncio.gather(*(run(i, m) for i, m in requests))
        refused = [a.text for a in answers if a.status_code not in (200, 202)]
        assert refused == []
        # An immediate run answers with its result, not a `running` left for the queue.
        answered = [a.json()["status"] for a in answers if a.status_code == 200]
        assert answered == ["completed"] * len(answered)
        assert len(answered) >= EACH // 2  # most immediate runs stayed immediate
        finals = await asyncio.gather(
            *(until_done(client, a.json()["executionId"]) for a in answers)
        )
    assert [(f["status"], f["result"]) for f in finals] == [
        ("completed", i + 2) for i, _ in requests
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    locked = [r.getMessage() for r in caplog.records if "locked" in str(r.__dict__).lower()]
    assert locked == []
