"""The Python client against a real Turnout on the embedded default (SQLite, no Redis)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from tests.client.conftest import APPROVAL, HELLO, delays
from tests.support.proxy import cutting_proxy
from turnout import (
    AsyncClient,
    Client,
    Conflict,
    InvalidTransition,
    NotFound,
    Unreachable,
    ValidationFailed,
    WaitTimeout,
)


def test_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, turnout\n"
        "from turnout import Client, AsyncClient\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(roots & {'app', 'worker', 'fastapi', 'sqlalchemy', 'pydantic', 'redis'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_immediate_returns_the_finished_execution(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        execution = client.run(HELLO, {"name": "Ada"}, tags=["t1"])
        assert execution.status == "completed" and execution.mode == "immediate"
        assert execution.result == {"message": "Hello, Ada!"}
        assert [(s.node_id, s.status, s.attempt) for s in execution.steps] == [
            ("greet", "completed", 1)
        ]
        assert execution.tags == ("t1",)
        assert client.get(execution.id).result == execution.result


def test_run_queued_with_wait_follows_the_stream_to_the_end(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        accepted = client.run(delays(3), mode="queued")
        assert accepted.status == "pending" and accepted.mode == "queued"
        done = client.run(delays(3), mode="queued", wait=True, wait_timeout=20)
        assert done.status == "completed" and done.progress.done == 3
        assert done.completed_at is not None and done.duration_ms is not None


def test_list_iterates_across_pages(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        ids = [client.run(HELLO, {"name": str(i)}, tags=["paged"]).id for i in range(5)]
        listed = [e.id for e in client.list(tag="paged", page_size=2)]
        assert listed == ids[::-1]  # newest first, every page
        assert [e.id for e in client.list(tag="paged", page_size=2, limit=3)] == ids[:1:-1]
        assert list(client.list(tag="paged", status="failed")) == []


def test_stream_resumes_after_cuts_with_nothing_missed_or_repeated(embedded_url: str) -> None:
    with Client(embedded_url) as direct:
        execution = direct.run(delays(8), mode="queued")
        with cutting_proxy(embedded_url, cut_after=700) as (proxy, url), Client(url) as client:
            seen = [(e.seq, e.type, e.node_id) for e in client.stream(execution.id)]
        stored = [(e.seq, e.type, e.node_id) for e in direct.stream(execution.id)]
    assert proxy.cuts >= 2
    assert seen == stored
    assert [seq for seq, _, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][1] == "execution.completed"


def test_stream_after_a_seq_and_queue_frames(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        execution = client.run(delays(2), mode="queued", wait=True, wait_timeout=20)
        events = list(client.stream(execution.id, after=2))
        assert events[0].seq == 3 and events[-1].terminal
        assert all(e.execution_id == execution.id for e in events)


def test_errors_become_typed_exceptions(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        with pytest.raises(NotFound):
            client.get("00000000-0000-0000-0000-000000000000")
        done = client.run(HELLO, {"name": "x"})
        with pytest.raises(InvalidTransition) as transition:
            client.resume(done.id)
        assert transition.value.current_status == "completed"
        bad = {"nodes": [{"id": "a", "type": "nope"}, {"id": "a", "type": "transform"}]}
        with pytest.raises(ValidationFailed) as invalid:
            client.run(bad)
        codes = sorted(p.code for p in invalid.value.problems)
        assert len(codes) == 2 and "unknown_type" in codes[0] + codes[1], codes
        client.register({**HELLO, "version": "1"})
        with pytest.raises(Conflict) as conflict:
            client.register({**HELLO, "version": "1"})
        assert not isinstance(conflict.value, InvalidTransition)


def test_control_verbs_and_human_input(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        waiting = client.run(APPROVAL, mode="queued")
        next(e for e in client.stream(waiting.id) if e.type == "execution.waiting")
        paused = client.pause(waiting.id)
        assert paused.status == "paused" and paused.changed is True
        assert client.pause(waiting.id).changed is False
        assert client.resume(waiting.id).status == "pending"
        stored = client.events(waiting.id)  # so far, without waiting for the end
        types = [e.type for e in stored]
        assert {"execution.paused", "execution.resumed"} <= set(types)
        assert not stored[-1].terminal
        with pytest.raises(WaitTimeout) as timeout:
            client.wait(waiting.id, timeout=0.5)
        assert timeout.value.status == "waiting"
        with pytest.raises(ValidationFailed):
            client.input(waiting.id, "approve", {"nope": 1})
        client.input(waiting.id, "approve", {"approved": True})
        assert client.wait(waiting.id, timeout=20).result == {"approved": True}

        failing = {"nodes": [{"id": "f", "type": "fail", "params": {"message": "boom"}}]}
        failed = client.run(failing)
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.message == "boom"
        retried = client.retry(failed.id, from_="start")
        assert retried.attempt == 2
        parked = client.run(APPROVAL, mode="queued")
        next(e for e in client.stream(parked.id) if e.type == "execution.waiting")
        assert client.cancel(parked.id).status == "cancelled"


def test_registry(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        one = client.register({**HELLO, "version": "1"})
        client.register({**HELLO, "version": "2"})
        assert (one.name, one.version) == ("hello", "1")
        assert {w.name for w in client.workflows()} == {"hello"}
        assert client.workflow("hello").version == "2"
        assert client.workflow("hello", version="1").version == "1"
        assert sorted(v.version or "" for v in client.versions("hello")) == ["1", "2"]
        execution = client.run("hello", {"name": "Registry"}, version="1")
        assert execution.result == {"message": "Hello, Registry!"}
        assert execution.workflow_version == "1"
        with pytest.raises(NotFound):
            client.run("nope")


def test_unreachable_server_is_its_own_error() -> None:
    with Client("http://127.0.0.1:9", timeout=2) as client, pytest.raises(Unreachable):
        client.get("00000000-0000-0000-0000-000000000000")


async def test_async_client_runs_streams_and_waits(embedded_url: str) -> None:
    async with AsyncClient(embedded_url) as client:
        immediate = await client.run(HELLO, {"name": "Async"})
        assert immediate.result == {"message": "Hello, Async!"}
        queued = await client.run(delays(3), mode="queued")
        types = [e.type async for e in client.stream(queued.id)]
        assert types[0] == "execution.created" and types[-1] == "execution.completed"
        assert (await client.wait(queued.id, timeout=10)).status == "completed"
        listed: list[Any] = [e async for e in client.list(limit=1)]
        assert len(listed) == 1 and listed[0].id == queued.id
        with pytest.raises(InvalidTransition):
            await client.pause(queued.id)
        parked = await client.run(APPROVAL, mode="queued")
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            await client.wait(parked.id, timeout=0.3)
        assert time.monotonic() - started < 5
        so_far = [e.type for e in await client.events(parked.id)]
        assert so_far[0] == "execution.created" and "execution.completed" not in so_far
