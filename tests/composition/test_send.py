"""Sending events from Python (sync and async clients) and from `turnout emit`."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.cli.conftest import turnout
from tests.client.conftest import embedded_url
from turnout import AsyncClient, Client

__all__ = ["embedded_url"]

TRIGGERED: dict[str, Any] = {
    "name": "on-signup",
    "version": "1",
    "on": {"event": "user.signup", "when": "event.data.plan == 'pro'"},
    "nodes": [{"id": "hi", "type": "transform", "params": {"who": "{{ input.data.email }}"}}],
    "output": "{{ hi.who }}",
}


def test_client_sends_events_idempotently_and_sees_the_runs(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        client.register(TRIGGERED)
        free = client.send_event("user.signup", {"plan": "free", "email": "a@x"})
        assert free.runs == () and free.name == "user.signup" and free.id
        pro = client.send_event("user.signup", {"plan": "pro", "email": "b@x"}, id="s-1")
        again = client.send_event("user.signup", {"plan": "pro", "email": "other"}, id="s-1")
        assert again.raw == pro.raw
        [(workflow, execution_id)] = pro.runs
        assert workflow == "on-signup"
        done = client.wait(execution_id, timeout=20)
    assert done.status == "completed" and done.result == "b@x"


async def test_async_client_sends_events(embedded_url: str) -> None:
    async with AsyncClient(embedded_url) as client:
        sent = await client.send_event("ping", [1, 2], id="p-1")
        again = await client.send_event("ping", None, id="p-1")
    assert sent.data == [1, 2] and again.data == [1, 2] and sent.received_at is not None


def test_turnout_emit_sends_an_event(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        client.register(TRIGGERED)
    answer = turnout(
        "emit",
        "user.signup",
        "--data",
        '{"plan": "pro", "email": "c@x"}',
        "--id",
        "cli-1",
        "-o",
        "json",
        server=embedded_url,
    )
    assert answer.returncode == 0, answer.stderr
    sent = json.loads(answer.stdout)
    assert sent["id"] == "cli-1" and sent["data"]["email"] == "c@x"
    [run] = sent["runs"]
    table = turnout("emit", "user.signup", "--id", "cli-1", server=embedded_url)
    assert table.returncode == 0 and f"started {run['executionId']}" in table.stdout
    bad = turnout("emit", "user signup", server=embedded_url)
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    deadline = time.monotonic() + 20
    with Client(embedded_url) as client:
        while client.get(run["executionId"]).status != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
