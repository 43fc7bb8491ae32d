"""One JSON rule on both databases: a value JSON cannot carry fails its step or its request
with a clear error, and every accepted execution reaches a terminal status."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.nodes.registry import default_registry
from app.runtime import build_runtime
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async
from tests.support.nodes import BadStateNode
from tests.support.workers import running_worker

# (expression, the step error's message): each value is what a transform's `v` evaluates to.
BAD_OUTPUTS = [
    ("{{ float('nan') }}", "v: NaN is not valid JSON"),
    ("{{ float('inf') }}", "v: Infinity is not valid JSON"),
    ("{{ -1e308 * 10 }}", "v: -Infinity is not valid JSON"),
    ("{{ set([1, 2]) }}", "v: set is not valid JSON"),
    ("{{ {'k': ['a\\x00b']} }}", "v.k[0]: a string may not contain NUL (\\u0000)"),
    ("{{ '\\ud800' }}", "v: a string may not contain a lone surrogate (\\ud800)"),
    ("{{ {'k\\x00': 1} }}", "v.k\\u0000: a string may not contain NUL (\\u0000)"),
    ("{{ b'bytes' }}", "v: bytes is not valid JSON"),
    ("{{ 1j }}", "v: complex is not valid JSON"),
    ("{{ ... }}", "v: Ellipsis is not valid JSON"),
    ("{{ " + "[" * 70 + "]" * 70 + " }}", "nested too deeply"),
]


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, worker: bool) -> AsyncIterator[httpx.AsyncClient]:
    registry = default_registry()
    registry.register(BadStateNode())
    app = create_app(settings, runtime=build_runtime(settings, role="api", registry=registry))
    async with contextlib.AsyncExitStack() as stack:
        if worker:
            await stack.enter_async_context(running_worker(settings))
        url = await stack.enter_async_context(run_server_async(app))
        yield await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))


@pytest.fixture(params=["postgresql", "sqlite"])
async def client(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on Postgres with Redis and an arq worker, or embedded on SQLite."""
    fast: dict[str, Any] = {"lease_ms": 500, "heartbeat_ms": 100, "reconcile_interval_ms": 100}
    if request.param == "postgresql":
        cfg = settings.model_copy(update=fast)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
        cfg = IsolatedSettings(DATABASE_URL=url, log_json=False, **fast)
    async with serving(cfg, worker=request.param == "postgresql") as c:
        yield c


async def settled(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, Any] = (await client.get(f"/execution/{execution_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"still {body['status']}: {body}"
        await asyncio.sleep(0.02)


async def event_types(client: httpx.AsyncClient, execution_id: str) -> list[str]:
    stream = await client.get(f"/execution/{execution_id}/stream")
    return [line[7:] for line in stream.text.splitlines() if line.startswith("event: ")]


def one_transform(expression: str) -> dict[str, Any]:
    return {"nodes": [{"id": "t", "type": "transform", "params": {"v": expression}}]}


@pytest.mark.parametrize("mode", ["immediate", "queued"])
async def test_a_step_output_that_is_not_json_fails_the_run_with_output_not_json(
    client: httpx.AsyncClient, mode: str
) -> None:
    for expression, message in BAD_OUTPUTS:
        body = {"workflow": one_transform(expression), "mode": mode}
        answer = await client.post("/workflow/run", json=body)
        assert answer.status_code == (200 if mode == "immediate" else 202), answer.text
        execution = await settled(client, answer.json()["executionId"])
        assert execution["status"] == "failed", (expression, execution)
        step = execution["steps"][0]
        assert step["error"]["code"] == "output_not_json", (expression, step)
        assert message in step["error"]["message"], (expression, step)
        assert step["output"] is None
        # Ended by its first runner: not re-claimed again and again.
        started = (await event_types(client, execution["executionId"])).count("execution.started")
        assert started == 1, expression
    listed = await client.get("/executions", params={"limit": 50})
    assert listed.status_code == 200 and len(listed.json()["items"]) == len(BAD_OUTPUTS)


async def test_a_workflow_output_that_is_not_json_fails_the_run(
    client: httpx.AsyncClient,
) -> None:
    workflow = {**one_transform("1"), "output": {"r": "{{ set([t.v]) }}"}}
    answer = await client.post("/workflow/run", json={"workflow": workflow})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "failed"
    assert answer.json()["error"]["code"] == "output_not_json"
    assert answer.json()["error"]["message"] == "output.r: set is not valid JSON"


async def test_tuples_and_integer_keys_are_normalised_as_json_does(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/workflow/run", json={"workflow": one_transform("{{ {1: (2, 3)} }}")}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["steps"][0]["output"] == {"v": {"1": [2, 3]}}


async def test_a_write_the_database_refuses_fails_the_execution_once(
    client: httpx.AsyncClient,
) -> None:
    workflow = {"nodes": [{"id": "s", "type": "test.bad_state"}]}
    answer = await client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
    assert answer.status_code == 200, answer.text
    execution = await settled(client, answer.json()["executionId"])
    assert execution["status"] == "failed"
    assert execution["error"]["code"] == "write_failed"
    assert "could not be stored" in execution["error"]["message"]
    assert (await event_types(client, execution["executionId"]))[-1] == "execution.failed"


def raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


INLINE = '{"nodes": [{"id": "a", "type": "noop"}]}'


def inline(rest: str) -> str:
    """A run body (JSON text) of the one-node workflow plus `rest`."""
    return '{"workflow": ' + INLINE + ", " + rest + "}"


# (body as JSON text, the field the answer names)
BAD_REQUESTS = [
    (inline('"input": {"x": NaN}'), "input"),
    (inline('"input": [Infinity]'), "input"),
    (inline('"input": {"x": 1e400}'), "input"),
    (inline('"input": {"x": "a\\u0000"}'), "input"),
    (inline('"input": {"k\\u0000": 1}'), "input"),
    (inline('"input": "\\ud800"'), "input"),
    (inline('"metadata": {"m": "\\udfff"}'), "metadata"),
    (inline('"options": {"tags": ["a\\u0000"]}'), "options"),
    ('{"workflow": {"name": "n\\u0000", "nodes": [{"id": "a", "type": "noop"}]}}', "workflow"),
    (
        '{"workflow": {"nodes": [{"id": "a", "type": "transform", "params": {"p": "\\u0000"}}]}}',
        "workflow",
    ),
    ('{"workflowId": "w\\u0000"}', "workflowId"),
    (inline('"input": ' + "[" * 65 + "]" * 65), "input"),
    (inline('"input": ' + "[" * 300 + "]" * 300), "input"),
]


async def test_a_request_holding_what_json_cannot_store_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    for text, field in BAD_REQUESTS:
        answer = await client.post("/workflow/run", **raw(text))
        assert answer.status_code == 422, (text[:80], answer.text)
        details = answer.json()["error"]["details"]
        assert details[0]["field"] == field, (text[:80], details)
        assert details[0]["code"] == "not_json", details
        assert details[0]["message"].startswith(field), details
    for name in ("workflow", "tag"):
        answer = await client.get("/executions", params={name: "\x00"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["field"] == name
    answer = await client.post("/workflows/w%00/run", json={})
    assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "name"
    # Nothing was stored: every list still reads back.
    listed = await client.get("/executions")
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_input_nested_to_the_limit_is_stored_and_reads_back(
    client: httpx.AsyncClient,
) -> None:
    text = inline('"input": ' + "[" * 64 + "]" * 64)
    answer = await client.post("/workflow/run", **raw(text))
    assert answer.status_code == 200, answer.text
    execution = await client.get(f"/execution/{answer.json()['executionId']}")
    assert execution.status_code == 200
    assert (await client.get("/executions")).status_code == 200


async def test_a_registered_workflow_holding_nul_is_a_422(client: httpx.AsyncClient) -> None:
    nodes = '[{"id": "a", "type": "transform", "params": {"p": "\\u0000"}}]'
    text = '{"name": "w", "version": "1", "nodes": ' + nodes + "}"
    answer = await client.post("/workflows", **raw(text))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["error"]["details"][0]
    assert detail["field"] == "nodes[0].params.p" and detail["code"] == "not_json"
    assert (await client.get("/workflows")).status_code == 200
