"""Child workflows on the embedded default (SQLite, in-process queue)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.composition.flows import CHILD, parent, register, start, wait_for
from tests.conftest import IsolatedSettings
from tests.servers import run_server_async


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False
    )
    async with (
        run_server_async(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def test_parent_waits_for_child_and_gets_its_result_on_sqlite(
    embedded: httpx.AsyncClient,
) -> None:
    await register(embedded, CHILD)
    parent_id = await start(embedded, parent("child"), n=21)
    done = await wait_for(embedded, parent_id, {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    assert done["result"] == {"doubled": 42}
    assert done["mode"] == "queued"  # the analyzer queues a run that waits on a child
    [child] = done["children"]
    assert child["stepId"] == "call" and child["status"] == "completed"
    step = next(s for s in done["steps"] if s["nodeId"] == "call")
    assert step["output"] == {"doubled": 42}
    assert step["child"]["executionId"] == child["executionId"]
    child_body = (await embedded.get(f"/execution/{child['executionId']}")).json()
    assert child_body["parent"] == {"executionId": parent_id, "stepId": "call"}
    assert child_body["workflowName"] == "child"


async def test_immediate_parent_parks_as_waiting_and_continues_queued(
    embedded: httpx.AsyncClient,
) -> None:
    """As with human input: the request answers with the waiting run; the queue finishes it."""
    await register(embedded, CHILD)
    answer = await embedded.post(
        "/workflow/run", json={"workflow": parent("child"), "input": {"n": 5}, "mode": "immediate"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["mode"] == "immediate" and body["status"] in ("waiting", "completed")
    done = await wait_for(embedded, body["executionId"], {"completed", "failed"})
    assert done["status"] == "completed" and done["result"] == {"doubled": 10}


async def test_wait_event_and_trigger_on_sqlite(embedded: httpx.AsyncClient) -> None:
    waiting = {
        "nodes": [{"id": "e", "type": "wait.event", "params": {"name": "ping"}}],
        "output": "{{ e.data }}",
    }
    triggered = {
        "name": "on-ping",
        "version": "1",
        "on": {"event": "ping"},
        "nodes": [{"id": "t", "type": "transform", "params": {"v": "{{ input.data.v }}"}}],
        "output": "{{ t.v }}",
    }
    await register(embedded, triggered)
    execution_id = await start(embedded, waiting)
    await wait_for(embedded, execution_id, {"waiting"})
    sent = (await embedded.post("/events", json={"name": "ping", "data": {"v": 3}})).json()
    done = await wait_for(embedded, execution_id, {"completed", "failed"})
    assert done["status"] == "completed" and done["result"] == {"v": 3}
    [run] = sent["runs"]
    triggered_run = await wait_for(embedded, run["executionId"], {"completed", "failed"})
    assert triggered_run["result"] == 3


async def test_dashboard_links_parent_and_child(embedded: httpx.AsyncClient) -> None:
    await register(embedded, CHILD)
    parent_id = await start(embedded, parent("child"), n=2)
    done = await wait_for(embedded, parent_id, {"completed", "failed"})
    child_id = done["children"][0]["executionId"]
    page = await embedded.get(f"/ui/executions/{parent_id}")
    assert page.status_code == 200
    assert f'data-child-id="{child_id}"' in page.text
    assert f'href="/ui/executions/{child_id}"' in page.text
    step = await embedded.get(f"/ui/executions/{parent_id}/steps/call")
    assert f'href="/ui/executions/{child_id}"' in step.text
    child_page = await embedded.get(f"/ui/executions/{child_id}")
    assert f'data-parent-id="{parent_id}"' in child_page.text
