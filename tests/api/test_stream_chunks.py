"""A stream sends the events at hand together in one write: a backlog page, or what arrived
live at once, is one HTTP chunk rather than one per event."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events.bus import InProcessBus
from app.events.stream import execution_events
from app.store.records import EventRecord
from app.store.repository import Repository
from tests.support.executions import insert_pending

THREE = {
    "nodes": [
        {"id": "a", "type": "transform", "params": {"v": 1}},
        {"id": "b", "type": "transform", "params": {"v": 2}, "dependsOn": ["a"]},
        {"id": "c", "type": "transform", "params": {"v": 3}, "dependsOn": ["b"]},
    ]
}


async def chunks_of(base: str, path: str) -> list[bytes]:
    """The body's HTTP chunks, as sent (chunked transfer encoding, read off the socket)."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                return chunks
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    finally:
        writer.close()


async def test_a_finished_executions_stream_is_one_chunk_of_events(
    client: httpx.AsyncClient, api_url: str
) -> None:
    body = {"workflow": THREE, "input": {}, "mode": "immediate"}
    response = await client.post("/workflow/run", json=body)
    assert response.status_code == 200, response.text
    execution_id = response.json()["executionId"]
    chunks = await asyncio.wait_for(chunks_of(api_url, f"/execution/{execution_id}/stream"), 10)
    with_events = [c for c in chunks if b"event:" in c]
    assert len(with_events) == 1, chunks
    frames = [f for f in with_events[0].decode().split("\r\n\r\n") if f.strip()]
    types = [
        line.split(":", 1)[1].strip()
        for f in frames
        for line in f.splitlines()
        if line.startswith("event:")
    ]
    assert types[0] == "execution.created" and types[-1] == "execution.completed"
    assert len(types) == 9  # created, started, 3 x (step started, completed), completed
    ids = [
        int(line.split(":", 1)[1])
        for f in frames
        for line in f.splitlines()
        if line.startswith("id:")
    ]
    assert ids == list(range(1, 10))
    data = [
        json.loads(line.split(":", 1)[1])
        for f in frames
        for line in f.splitlines()
        if line.startswith("data:")
    ]
    assert all(d["executionId"] == execution_id for d in data)


def event(execution_id: uuid.UUID, seq: int, kind: str) -> EventRecord:
    return EventRecord(execution_id, seq, kind, {}, datetime.now(UTC))


async def test_events_that_arrive_live_together_come_as_one_batch(engine: AsyncEngine) -> None:
    repo = Repository(engine)
    bus = InProcessBus()
    execution_id = await insert_pending(repo, THREE)  # its execution.created is seq 1
    batches = execution_events(repo, bus, execution_id, 0)
    first = await asyncio.wait_for(anext(batches), 5)
    assert [e.type for e in first] == ["execution.created"]
    upcoming = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)  # waiting on the live queue
    kinds = ["execution.started", "step.started", "step.completed"]
    await bus.publish([event(execution_id, 2 + n, kind) for n, kind in enumerate(kinds)])
    together = await asyncio.wait_for(upcoming, 5)
    assert [(e.seq, e.type) for e in together] == [(2, kinds[0]), (3, kinds[1]), (4, kinds[2])]
    # A duplicate is dropped, and the terminal event ends the batch and the stream; what
    # follows it in the same arrival is not sent.
    late: list[Any] = [event(execution_id, 4, "step.completed")]
    late += [event(execution_id, 5, "execution.completed"), event(execution_id, 6, "step.started")]
    upcoming = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)
    await bus.publish(late)
    last = await asyncio.wait_for(upcoming, 5)
    assert [(e.seq, e.type) for e in last] == [(5, "execution.completed")]
    ended = asyncio.ensure_future(anext(batches))
    try:
        await asyncio.wait_for(ended, 5)
        raise AssertionError("the stream went on after its terminal event")
    except StopAsyncIteration:
        pass
