"""A stream resumed at or after the end of a finished execution ends at once (real uvicorn):
`204 No Content`, SSE's "do not reconnect", so neither a browser nor the client loops."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from app.config import Settings
from tests.api.test_queued_runs import wait_for_status
from tests.support.sse import Frame, read_stream
from tests.support.workers import running_worker
from turnout import AsyncClient, Client

DONE = {"nodes": [{"id": "a", "type": "transform", "params": {"x": 1}}]}
FAILS = {"nodes": [{"id": "boom", "type": "fail", "params": {"message": "no"}}]}
# A stream that does not end within this long is taken to wait forever.
ENDS_WITHIN_S = 5


async def run_now(client: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stream(
    client: httpx.AsyncClient,
    execution_id: str,
    *,
    last: int | None = None,
    after: int | None = None,
) -> list[Frame]:
    """Every frame of the stream, which must end on its own."""
    path = f"/execution/{execution_id}/stream" + (f"?after={after}" if after is not None else "")
    headers = {"Last-Event-ID": str(last)} if last is not None else None
    async with asyncio.timeout(ENDS_WITHIN_S):
        return await read_stream(client, path, headers)


async def last_seq(client: httpx.AsyncClient, execution_id: str) -> int:
    frames = await stream(client, execution_id)
    return frames[-1].seq


async def ends_at_once(
    client: httpx.AsyncClient,
    execution_id: str,
    *,
    last: int | None = None,
    after: int | None = None,
) -> None:
    """The stream answers 204 with no body, at once."""
    path = f"/execution/{execution_id}/stream" + (f"?after={after}" if after is not None else "")
    headers = {"Last-Event-ID": str(last)} if last is not None else None
    async with asyncio.timeout(ENDS_WITHIN_S):
        response = await client.get(path, headers=headers)
    assert (response.status_code, response.content) == (204, b"")


async def test_resuming_at_the_terminal_event_ends_at_once(client: httpx.AsyncClient) -> None:
    execution_id = (await run_now(client, DONE))["executionId"]
    end = await last_seq(client, execution_id)
    await ends_at_once(client, execution_id, last=end)
    await ends_at_once(client, execution_id, after=end)


async def test_resuming_past_the_end_ends_at_once(client: httpx.AsyncClient) -> None:
    execution_id = (await run_now(client, DONE))["executionId"]
    end = await last_seq(client, execution_id)
    await ends_at_once(client, execution_id, last=end + 10)
    await ends_at_once(client, execution_id, after=end + 10)


async def test_the_client_stops_at_the_end_instead_of_reconnecting(
    client: httpx.AsyncClient, api_url: str
) -> None:
    execution_id = (await run_now(client, DONE))["executionId"]
    end = await last_seq(client, execution_id)
    async with asyncio.timeout(ENDS_WITHIN_S), AsyncClient(api_url) as turnout:
        assert [e async for e in turnout.stream(execution_id, after=end)] == []

    def follow() -> list[Any]:
        with Client(api_url) as sync:
            return list(sync.stream(execution_id, after=end, timeout=ENDS_WITHIN_S))

    assert await asyncio.to_thread(follow) == []


async def test_resuming_just_before_the_end_sends_the_terminal_event_only(
    client: httpx.AsyncClient,
) -> None:
    execution_id = (await run_now(client, DONE))["executionId"]
    end = await last_seq(client, execution_id)
    frames = await stream(client, execution_id, last=end - 1)
    assert [(f.event, f.seq) for f in frames] == [("execution.completed", end)]


async def test_a_retry_goes_on_after_the_old_terminal_event(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = (await run_now(client, FAILS))["executionId"]
    first_end = await last_seq(client, execution_id)
    async with running_worker(settings):
        retried = await client.post(f"/execution/{execution_id}/retry", json={})
        assert retried.status_code == 200, retried.text
        await wait_for_status(client, execution_id, {"failed"})
    # From the first attempt's end: the whole second attempt, up to its own terminal event.
    second = await stream(client, execution_id, last=first_end)
    assert second[0].event == "execution.resumed" and second[0].seq == first_end + 1
    assert second[-1].event == "execution.failed"
    assert [f.event for f in second].count("execution.failed") == 1
    # From the second attempt's end: nothing more, and the stream ends.
    await ends_at_once(client, execution_id, last=second[-1].seq)
