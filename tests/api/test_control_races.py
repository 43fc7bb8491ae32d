"""A cancel or pause that races a queued run parking as `waiting` is never lost.

The run can always be stopped (it is pending, running or waiting for input): so every
request must end with the execution cancelled or paused, and the answer must say it changed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async
from tests.support.workers import running_worker, worker_process

ASK = {
    "nodes": [
        {"id": "prep", "type": "transform", "params": {"n": 1}},
        {"id": "ask", "type": "human.input", "params": {"prompt": "ok?"}, "dependsOn": ["prep"]},
    ]
}
ROUNDS = 20


@pytest.fixture
def api_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The API's settings; `control_wait_ms` from the test's parameter (0: the answer does
    not wait for the runner, which must then apply the request on its own)."""
    wait_ms = getattr(request, "param", settings.control_wait_ms)
    return settings.model_copy(update={"control_wait_ms": wait_ms})


async def reaches(client: httpx.AsyncClient, execution_id: str, target: str) -> str:
    """The status once it is `target`, or the one it is stuck in after a few seconds (a run
    that parked as `waiting` may apply a late request just after)."""
    deadline = time.monotonic() + 3
    while True:
        status: str = (await client.get(f"/execution/{execution_id}")).json()["status"]
        if status == target or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def worker(settings: Settings, kind: str) -> AsyncIterator[None]:
    if kind == "task":
        async with running_worker(settings):
            yield
    else:
        with worker_process(settings):
            yield


@pytest.mark.parametrize("api_settings", [5_000, 0], indirect=True, ids=["wait", "nowait"])
@pytest.mark.parametrize("kind", ["task", "process"])
@pytest.mark.parametrize(("verb", "target"), [("cancel", "cancelled"), ("pause", "paused")])
async def test_control_right_after_submit_is_never_lost(
    client: httpx.AsyncClient,
    settings: Settings,
    api_settings: Settings,
    verb: str,
    target: str,
    kind: str,
) -> None:
    async with worker(settings, kind):
        lost = await race(client, verb, target)
    # (answered status, answered changed, final status) of every request not applied
    assert lost == [], f"{len(lost)} of {ROUNDS} {verb}s were lost: {lost}"


@pytest.mark.parametrize(("verb", "target"), [("cancel", "cancelled"), ("pause", "paused")])
async def test_control_right_after_submit_is_never_lost_embedded(
    tmp_path: Path, verb: str, target: str
) -> None:
    """The embedded default: SQLite, the in-process queue, local signals."""
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False
    )
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        lost = await race(client, verb, target)
    assert lost == [], f"{len(lost)} of {ROUNDS} {verb}s were lost: {lost}"


async def race(client: httpx.AsyncClient, verb: str, target: str) -> list[tuple[str, bool, str]]:
    """Submit and at once cancel (or pause), ROUNDS times; the requests not applied."""
    lost: list[tuple[str, bool, str]] = []
    for _ in range(ROUNDS):
        accepted = await client.post("/workflow/run", json={"workflow": ASK, "mode": "queued"})
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["executionId"]
        answer = await client.post(f"/execution/{execution_id}/{verb}")
        assert answer.status_code == 200, answer.text
        final = await reaches(client, execution_id, target)
        body = answer.json()
        if final != target or not body["changed"]:
            lost.append((body["status"], body["changed"], final))
    return lost
