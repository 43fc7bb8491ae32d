"""Child workflows on Postgres + Redis with real arq workers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.composition.flows import (
    CHILD,
    FAILING_CHILD,
    SLOW_CHILD,
    parent,
    register,
    start,
    wait_for,
)
from tests.support.workers import running_worker, worker_process

ENDED = {"completed", "failed", "cancelled"}


async def stream_types(client: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    import json

    stream = await client.get(f"/execution/{execution_id}/stream")
    frames: list[dict[str, Any]] = []
    kind = None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            frames.append({"type": kind, "data": json.loads(line[6:])})
    return frames


async def test_parent_waits_on_a_worker_process_and_gets_the_child_result(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, CHILD)
    with worker_process(settings):  # another OS process: the wake-up crosses processes
        parent_id = await start(client, parent("child"), n=4)
        done = await wait_for(client, parent_id, ENDED)
    assert done["status"] == "completed", done
    assert done["result"] == {"doubled": 8}
    [child] = done["children"]
    child_body = (await client.get(f"/execution/{child['executionId']}")).json()
    assert child_body["parent"] == {"executionId": parent_id, "stepId": "call"}
    assert child_body["status"] == "completed"
    frames = await stream_types(client, parent_id)
    waiting = next(f for f in frames if f["type"] == "execution.waiting")
    assert waiting["data"]["waitingFor"][0]["childExecutionId"] == child["executionId"]
    resumed = next(f for f in frames if f["type"] == "execution.resumed")
    assert resumed["data"]["childExecutionId"] == child["executionId"]
    completed = next(f for f in frames if f["type"] == "step.completed")
    assert completed["data"]["nodeId"] == "call"
    assert completed["data"]["childExecutionId"] == child["executionId"]


async def test_parent_frees_a_one_job_worker_while_its_child_runs(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """With max_jobs=1 the child can only run if the parent's job ended (it parked)."""
    await register(client, CHILD)
    async with running_worker(settings, max_jobs=1):
        parent_id = await start(client, parent("child"), n=1)
        done = await wait_for(client, parent_id, ENDED)
    assert done["status"] == "completed" and done["result"] == {"doubled": 2}


async def test_failed_child_fails_the_step_and_a_retry_starts_a_new_child(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, FAILING_CHILD)
    retry = {"maxAttempts": 2, "backoff": "fixed", "initialDelay": 10}
    async with running_worker(settings):
        parent_id = await start(client, parent("flaky", retry=retry))
        done = await wait_for(client, parent_id, ENDED)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "child_failed"
    assert done["error"]["nodeId"] == "call"
    assert "child broke" in done["error"]["message"]
    children = done["children"]
    assert len(children) == 2  # one per attempt
    assert len({c["executionId"] for c in children}) == 2
    assert all(c["status"] == "failed" for c in children)
    step = next(s for s in done["steps"] if s["nodeId"] == "call")
    assert step["attempt"] == 2
    assert step["child"]["executionId"] == children[1]["executionId"]
    frames = await stream_types(client, parent_id)
    retrying = next(f["data"] for f in frames if f["type"] == "step.retrying")
    failed = next(f["data"] for f in frames if f["type"] == "step.failed")
    assert retrying["childExecutionId"] == children[0]["executionId"]
    assert failed["childExecutionId"] == children[1]["executionId"]


async def test_cancelling_the_parent_cancels_its_running_child(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, SLOW_CHILD)
    async with running_worker(settings):
        parent_id = await start(client, parent("slow"))
        waiting = await wait_for(client, parent_id, {"waiting"})
        child_id = waiting["children"][0]["executionId"]
        await wait_for(client, child_id, {"waiting"})
        cancelled = await client.post(f"/execution/{parent_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        child = await wait_for(client, child_id, ENDED, timeout=10)
    assert child["status"] == "cancelled"
    assert f"parent {parent_id}" in child["error"]["message"]


async def test_depth_over_the_bound_fails_the_step_with_a_clear_code(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    # A workflow that calls itself: each level is a child of the one above.
    recursive = {
        "name": "recurse",
        "version": "1",
        "nodes": [{"id": "deeper", "type": "workflow", "params": {"workflow": "recurse"}}],
    }
    await register(client, recursive)
    shallow = settings.model_copy(update={"max_child_depth": 2})
    async with running_worker(shallow, ctx={"settings": shallow}):
        answer = await client.post("/workflows/recurse/run", json={"input": {}})
        assert answer.status_code == 202, answer.text
        top = await wait_for(client, answer.json()["executionId"], ENDED)
    assert top["status"] == "failed"
    assert top["error"]["code"] == "child_failed"
    async with engine.connect() as conn:
        depths = (
            await conn.execute(
                text("SELECT child_depth, status, error FROM workflow_executions ORDER BY 1")
            )
        ).all()
    assert [d.child_depth for d in depths] == [0, 1, 2]
    assert depths[-1].error["code"] == "child_depth_exceeded"
    assert "TURNOUT_MAX_CHILD_DEPTH=2" in depths[-1].error["message"]


@pytest.mark.parametrize("version", ["1", "latest"])
async def test_child_version_is_pinned_or_latest(
    client: httpx.AsyncClient, settings: Settings, version: str
) -> None:
    await register(client, CHILD, {**CHILD, "version": "2", "output": {"v2": "{{ double.n }}"}})
    workflow = parent("child")
    workflow["nodes"][0]["params"]["version"] = version
    async with running_worker(settings):
        done = await wait_for(client, await start(client, workflow, n=3), ENDED)
    assert done["result"] == ({"doubled": 6} if version == "1" else {"v2": 6})


async def test_unknown_child_workflow_fails_the_step_without_retrying(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    retry = {"maxAttempts": 3, "backoff": "fixed", "initialDelay": 10}
    async with running_worker(settings):
        done = await wait_for(client, await start(client, parent("nope", retry=retry)), ENDED)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "workflow_not_found"
    assert next(s for s in done["steps"] if s["nodeId"] == "call")["attempt"] == 1


async def test_a_lost_wake_up_is_recovered_by_the_reconciler(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    """The child ends behind the service's back (as if the process that ended it died before
    waking the parent): the reconciler's pass wakes the parent after the grace."""
    await register(client, SLOW_CHILD)
    quick = settings.model_copy(update={"reconcile_pending_grace_ms": 300})
    async with running_worker(quick, ctx={"settings": quick}):
        parent_id = await start(client, parent("slow"))
        waiting = await wait_for(client, parent_id, {"waiting"})
        child_id = waiting["children"][0]["executionId"]
        await wait_for(client, child_id, {"waiting"})
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE workflow_executions SET status = 'completed', completed_at = now(), "
                    "result = '{\"doubled\": 1}' WHERE id = :id"
                ),
                {"id": child_id},
            )
        done = await wait_for(client, parent_id, ENDED, timeout=15)
    assert done["status"] == "completed" and done["result"] == {"doubled": 1}
    frames = await stream_types(client, parent_id)
    resumed = [f["data"] for f in frames if f["type"] == "execution.resumed"]
    assert resumed and resumed[0]["recovered"] is True


async def test_retrying_the_parent_execution_starts_a_new_child(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await register(client, FAILING_CHILD)
    async with running_worker(settings):
        parent_id = await start(client, parent("flaky"))
        first = await wait_for(client, parent_id, ENDED)
        assert first["status"] == "failed" and len(first["children"]) == 1
        retried = await client.post(f"/execution/{parent_id}/retry", json={"from": "failed"})
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] not in ENDED  # the answer shows the new attempt
        second = await wait_for(client, parent_id, ENDED)
    assert second["status"] == "failed" and second["attempt"] == 2
    assert len({c["executionId"] for c in second["children"]}) == 2
