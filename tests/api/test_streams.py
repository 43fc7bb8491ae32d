"""The SSE stream against a real uvicorn server: replay, live, reconnects, fan-out, cleanup."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.servers import run_server
from tests.support.sse import Frame, frames, read_stream
from tests.support.workers import running_worker, worker_process


def steps(n: int, delay_ms: int = 0, fail: bool = False) -> dict[str, Any]:
    """A chain of `n` steps (delays when `delay_ms`), optionally ending in a failing one."""
    nodes: list[dict[str, Any]] = []
    for i in range(n):
        node: dict[str, Any] = (
            {"id": f"s{i}", "type": "delay", "params": {"ms": delay_ms}}
            if delay_ms
            else {"id": f"s{i}", "type": "transform", "params": {"i": i}}
        )
        if i:
            node["dependsOn"] = [f"s{i - 1}"]
        nodes.append(node)
    if fail:
        nodes.append(
            {"id": "boom", "type": "fail", "params": {"message": "no"}, "dependsOn": [f"s{n - 1}"]}
        )
    return {"name": "streamed", "nodes": nodes}


async def submit(client: httpx.AsyncClient, workflow: dict[str, Any], mode: str = "queued") -> str:
    response = await client.post("/workflow/run", json={"workflow": workflow, "mode": mode})
    assert response.status_code in (200, 202), response.text
    execution_id: str = response.json()["executionId"]
    return execution_id


def seqs(received: list[Frame]) -> list[int]:
    return [f.seq for f in received if f.id is not None]


async def test_replay_then_live_until_the_terminal_event(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = await submit(client, steps(3, delay_ms=50))
    async with running_worker(settings):
        received = await read_stream(client, f"/execution/{execution_id}/stream")
    events = [f.event for f in received if f.id is not None]
    assert events[0] == "execution.created" and events[-1] == "execution.completed"
    assert events.count("step.completed") == 3
    assert seqs(received) == list(range(1, len(seqs(received)) + 1))
    last = received[-1].data
    assert last["executionId"] == execution_id and last["seq"] == received[-1].seq
    completed = [f.data for f in received if f.event == "step.completed"]
    assert [c["progress"] for c in completed] == [{"done": i, "total": 3} for i in (1, 2, 3)]
    # The seed's path streams the same events.
    again = await read_stream(client, f"/api/workflow/execution/{execution_id}/stream")
    assert seqs(again) == seqs(received)


async def test_unknown_execution_is_404_and_a_bad_last_event_id_422(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get(f"/execution/{uuid.uuid4()}/stream")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "execution_not_found"
    execution_id = await submit(client, steps(1), mode="immediate")
    bad = await client.get(f"/execution/{execution_id}/stream", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


@pytest.mark.parametrize("cut_after", [1, 4, 9])
async def test_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
    client: httpx.AsyncClient, settings: Settings, cut_after: int
) -> None:
    execution_id = await submit(client, steps(12, delay_ms=15))
    path = f"/execution/{execution_id}/stream"
    async with running_worker(settings):
        first: list[Frame] = []
        async with client.stream("GET", path) as response:
            async for frame in frames(response):
                first.append(frame)
                if len(first) == cut_after:
                    break  # the client goes away while the run keeps emitting
        await asyncio.sleep(0.03)  # events are committed while nobody listens
        resumed = await read_stream(client, path, headers={"Last-Event-ID": first[-1].id or ""})
    all_seqs = seqs(first) + seqs(resumed)
    assert all_seqs == list(range(1, len(all_seqs) + 1))  # no gap, no duplicate, in order
    assert resumed[-1].event == "execution.completed"


async def test_events_from_a_worker_in_another_process_reach_the_stream(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    with worker_process(settings):
        execution_id = await submit(client, steps(4, delay_ms=30))
        received = await read_stream(client, f"/execution/{execution_id}/stream")
    owners = {f.data.get("owner") for f in received if f.event == "execution.started"}
    assert owners and all(o.startswith("worker:") for o in owners)
    assert [f.event for f in received].count("step.completed") == 4
    assert received[-1].event == "execution.completed"


@pytest.fixture
def small_pool_api(settings: Settings) -> Iterator[tuple[str, FastAPI]]:
    small = settings.model_copy(update={"db_pool_size": 5, "db_max_overflow": 0})
    app = create_app(small)
    with run_server(app) as url:
        yield url, app


async def test_200_streams_with_a_pool_of_5_connections(
    small_pool_api: tuple[str, FastAPI], settings: Settings
) -> None:
    url, _ = small_pool_api
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        ids = [await submit(client, steps(2)) for _ in range(200)]
        opened = asyncio.Event()
        waiting = Counter[str]()

        async def watch(execution_id: str) -> list[str]:
            seen: list[str] = []
            async with client.stream("GET", f"/execution/{execution_id}/stream") as response:
                async for frame in frames(response):
                    if frame.event == "execution.created":
                        waiting["open"] += 1
                        if waiting["open"] == len(ids):
                            opened.set()
                    seen.append(frame.event)
            return seen

        watchers = [asyncio.create_task(watch(i)) for i in ids]
        await asyncio.wait_for(opened.wait(), 60)  # all 200 hold a stream, none a connection
        async with running_worker(settings):
            results = await asyncio.wait_for(asyncio.gather(*watchers), 90)
    assert all(r[-1] == "execution.completed" for r in results)


async def test_streams_of_clients_that_go_away_are_cleaned_up(
    small_pool_api: tuple[str, FastAPI],
) -> None:
    url, app = small_pool_api
    runtime = app.state.runtime
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        ids = [await submit(client, steps(1)) for _ in range(20)]  # no worker: they wait
        for execution_id in ids:
            async with client.stream("GET", f"/execution/{execution_id}/stream") as response:
                async for frame in frames(response):
                    if frame.event == "execution.created":
                        break
        assert runtime.bus.subscriber_count <= 20
        for _ in range(200):
            metrics = (await client.get("/metrics")).text
            if runtime.bus.subscriber_count == 0 and "turnout_sse_streams_open 0.0" in metrics:
                break
            await asyncio.sleep(0.02)
    assert runtime.bus.subscriber_count == 0
    assert "turnout_sse_streams_open 0.0" in metrics


async def test_pending_executions_report_their_queue_position(client: httpx.AsyncClient) -> None:
    ids = [await submit(client, steps(1)) for _ in range(3)]  # no worker
    positions = [(await client.get(f"/execution/{i}")).json()["queuePosition"] for i in ids]
    assert positions == [1, 2, 3]
    async with client.stream("GET", f"/execution/{ids[2]}/stream") as response:
        got: list[Frame] = []
        async for frame in frames(response):
            got.append(frame)
            if frame.event == "queue":
                break
    assert got[-1].data == {"queuePosition": 3} and got[-1].id is None


async def test_the_global_feed_shows_new_executions_and_status_changes(
    client: httpx.AsyncClient,
) -> None:
    seen: list[Frame] = []
    ready = asyncio.Event()

    async def watch() -> None:
        async with client.stream("GET", "/executions/stream") as response:
            ready.set()
            async for frame in frames(response):
                seen.append(frame)
                if frame.event == "execution.completed":
                    return

    watcher = asyncio.create_task(watch())
    await ready.wait()
    await asyncio.sleep(0.1)  # subscribed
    execution_id = await submit(client, steps(2), mode="immediate")
    await asyncio.wait_for(watcher, 10)
    mine = [f.event for f in seen if f.data["executionId"] == execution_id]
    assert mine == ["execution.created", "execution.started", "execution.completed"]
    assert all(not e.startswith("step.") for e in mine)


async def test_a_retried_execution_streams_its_new_attempt_on_the_same_stream(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = await submit(client, steps(1, fail=True), mode="immediate")
    assert (await client.get(f"/execution/{execution_id}")).json()["status"] == "failed"
    retried = await client.post(f"/execution/{execution_id}/retry", json={"from": "start"})
    assert retried.status_code == 200, retried.text
    async with running_worker(settings):
        received = await read_stream(client, f"/execution/{execution_id}/stream")
    events = [f.event for f in received]
    # The first attempt's terminal event does not end a stream that has more to say.
    assert events.count("execution.failed") == 2 and events[-1] == "execution.failed"
    assert "execution.resumed" in events


async def test_a_finished_stream_ends_when_its_events_fill_whole_backlog_pages(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = await submit(client, steps(2), mode="immediate")
    path = f"/execution/{execution_id}/stream"
    total = len(await read_stream(client, path))
    for page in (1, total // 2 if total % 2 == 0 else total, total):
        monkeypatch.setattr("app.events.stream.BACKLOG_PAGE", page)
        received = await asyncio.wait_for(read_stream(client, path), 10)
        assert seqs(received) == list(range(1, total + 1))
