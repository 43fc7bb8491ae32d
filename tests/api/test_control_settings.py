"""Control knobs and what a waiting step shows: TURNOUT_CANCEL_GRACE_MS, human.input."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from app.config import Settings
from app.main import create_app
from app.nodes.base import BaseNode, NodeContext, Params
from app.nodes.registry import default_registry
from app.runtime import build_runtime
from tests.api.test_control import submit
from tests.api.test_control_answers import wait_for_step
from tests.api.test_queued_runs import wait_for_status
from tests.servers import run_server
from tests.support.workers import running_worker


class StubbornParams(Params):
    ms: int = 10_000


class StubbornNode(BaseNode):
    """Ignores cancellation: only the runner's grace period ends the wait for it."""

    name: ClassVar[str] = "test.stubborn"
    params_model: ClassVar[type[BaseModel]] = StubbornParams

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        deadline = time.monotonic() + params.ms / 1000
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue
        return "done"


async def test_cancel_grace_setting_bounds_how_long_a_stubborn_step_delays_cancel(
    settings: Settings,
) -> None:
    settings = settings.model_copy(
        update={"redis_url": None, "cancel_grace_ms": 300, "control_wait_ms": 4000}
    )
    registry = default_registry()
    registry.register(StubbornNode())
    runtime = build_runtime(settings, registry=registry)
    workflow = {"nodes": [{"id": "s", "type": "test.stubborn", "params": {"ms": 8000}}]}
    with run_server(create_app(settings, runtime=runtime)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            accepted = await submit(client, workflow, mode="queued")
            execution_id = accepted["executionId"]
            await wait_for_step(client, execution_id, "s", "running")
            asked = time.monotonic()
            response = await client.post(f"/execution/{execution_id}/cancel")
            took = time.monotonic() - asked
    # With the 5 s the runner used to hard-code, the answer would still say `running`.
    assert response.json()["status"] == "cancelled", response.text
    assert took < 3.0, took  # grace 0.3 s; the old 5 s would not answer within the 4 s wait


ASK_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
HUMAN: dict[str, Any] = {
    "nodes": [
        {
            "id": "approve",
            "type": "human.input",
            "params": {
                "prompt": "Approve order 7?",
                "schema": ASK_SCHEMA,
                "timeout": 3_600_000,
            },
        }
    ]
}


async def test_waiting_human_step_shows_prompt_schema_deadline_and_then_who_answered(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    first = await submit(client, HUMAN, mode="immediate")
    execution_id = first["executionId"]
    body = (await client.get(f"/execution/{execution_id}")).json()
    [step] = body["steps"]
    assert step["status"] == "waiting"
    view = step["humanInput"]
    assert view["prompt"] == "Approve order 7?"
    assert view["schema"] == ASK_SCHEMA
    deadline = datetime.fromisoformat(view["deadline"])
    assert 3500 < (deadline - datetime.fromisoformat(body["createdAt"])).total_seconds() < 3700
    async with running_worker(settings):
        answered = await client.post(
            f"/execution/{execution_id}/input",
            json={"nodeId": "approve", "data": {"ok": True}},
            headers={"X-Actor": "carol"},
        )
        assert answered.status_code == 200, answered.text
        done = await wait_for_status(client, execution_id, {"completed", "failed"})
    assert done["status"] == "completed", done["error"]
    [step] = done["steps"]
    assert step["attempt"] == 1  # waiting for a human is not a second attempt
    assert step["humanInput"]["answeredBy"] == "carol"
    answered_at = datetime.fromisoformat(step["humanInput"]["answeredAt"])
    assert datetime.fromisoformat(body["createdAt"]) <= answered_at
    assert answered_at <= datetime.fromisoformat(done["completedAt"])
