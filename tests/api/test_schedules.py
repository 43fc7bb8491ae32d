"""`/schedules` over a real server on Postgres: the body, the answers, and live fires."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.security.conftest import bearer, make_key

WORKFLOW: dict[str, Any] = {
    "name": "report",
    "version": "1",
    "inputSchema": {
        "type": "object",
        "properties": {"region": {"type": "string"}},
        "required": ["region"],
    },
    "nodes": [{"id": "a", "type": "transform", "params": {"region": "{{ input.region }}"}}],
}
BODY = {"workflow": "report", "everyMs": 60_000, "input": {"region": "eu"}}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"schedule_tick_ms": 100})


@pytest.fixture
async def registered(client: httpx.AsyncClient) -> None:
    answer = await client.post("/workflows", json=WORKFLOW)
    assert answer.status_code == 201, answer.text


def problem(answer: httpx.Response) -> tuple[str, list[str]]:
    body = answer.json()["error"]
    return body["code"], [d["field"] for d in body["details"]]


async def test_create_read_list_change_and_delete(
    client: httpx.AsyncClient, registered: None
) -> None:
    made = await client.post("/schedules", json={**BODY, "tags": ["nightly"], "priority": 5})
    assert made.status_code == 201, made.text
    schedule = made.json()
    assert made.headers["location"] == f"/schedules/{schedule['id']}"
    assert schedule["workflow"] == "report" and schedule["version"] is None
    assert (schedule["overlap"], schedule["paused"], schedule["mode"]) == ("skip", False, "auto")
    assert schedule["catchupWindowMs"] == 60_000 and schedule["tags"] == ["nightly"]
    fires = [datetime.fromisoformat(at) for at in schedule["nextFires"]]
    assert len(fires) == 5 and all(at.second == 0 and at.microsecond == 0 for at in fires)
    assert all((b - a).total_seconds() == 60 for a, b in itertools.pairwise(fires))

    one = await client.get(f"/schedules/{schedule['id']}")
    assert one.status_code == 200 and one.json()["recentExecutions"] == []
    listed = (await client.get("/schedules")).json()
    assert [s["id"] for s in listed["items"]] == [schedule["id"]] and listed["nextCursor"] is None

    paused = await client.patch(f"/schedules/{schedule['id']}", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    changed = await client.patch(
        f"/schedules/{schedule['id']}",
        json={"cron": "30 9 * * 1-5", "timezone": "Europe/Paris", "overlap": "buffer_one"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["everyMs"]) == ("30 9 * * 1-5", None)
    first = datetime.fromisoformat(changed.json()["nextFires"][0])
    assert (first.hour, first.minute) in ((8, 30), (7, 30))  # 09:30 in Paris, in UTC

    assert (await client.delete(f"/schedules/{schedule['id']}")).status_code == 200
    gone = await client.get(f"/schedules/{schedule['id']}")
    assert gone.status_code == 404 and problem(gone)[0] == "schedule_not_found"
    assert (await client.delete(f"/schedules/{schedule['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "everyMs": None, "cron": "61 * * * *"}, "cron"),
        ({**BODY, "everyMs": None, "cron": "every day"}, "cron"),
        ({**BODY, "everyMs": None, "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({**BODY, "cron": "0 9 * * *"}, ""),  # both
        ({"workflow": "report", "input": {"region": "eu"}}, ""),  # neither
        ({**BODY, "timezone": "Europe/Paris"}, ""),  # a time zone for an interval
        ({**BODY, "everyMs": 10}, "everyMs"),
        ({**BODY, "overlap": "sometimes"}, "overlap"),
        ({**BODY, "catchupWindowMs": -1}, "catchupWindowMs"),
        ({**BODY, "mode": "later"}, "mode"),
        ({**BODY, "unknown": 1}, "unknown"),
    ],
)
async def test_a_bad_body_is_a_422_naming_the_field_and_creates_nothing(
    client: httpx.AsyncClient, registered: None, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/schedules", json=body)
    assert answer.status_code == 422, answer.text
    code, fields = problem(answer)
    assert code == "request_invalid" and field in fields
    assert (await client.get("/schedules")).json()["items"] == []


async def test_an_unknown_workflow_is_404_and_a_wrong_input_422(
    client: httpx.AsyncClient, registered: None
) -> None:
    missing = await client.post("/schedules", json={**BODY, "workflow": "nope"})
    assert missing.status_code == 404 and problem(missing)[0] == "workflow_not_found"
    wrong = await client.post("/schedules", json={**BODY, "input": {"region": 3}})
    assert wrong.status_code == 422 and problem(wrong)[0] == "input_invalid"
    made = (await client.post("/schedules", json=BODY)).json()
    patched = await client.patch(f"/schedules/{made['id']}", json={"input": {}})
    assert patched.status_code == 422 and problem(patched)[0] == "input_invalid"
    bad_cron = await client.patch(f"/schedules/{made['id']}", json={"cron": "* *"})
    assert bad_cron.status_code == 422 and "cron" in problem(bad_cron)[1]
    assert (await client.get(f"/schedules/{made['id']}")).json()["input"] == {"region": "eu"}


async def test_fires_carry_the_schedule_in_the_execution_and_the_list(
    client: httpx.AsyncClient, registered: None
) -> None:
    made = (await client.post("/schedules", json={**BODY, "everyMs": 1000})).json()
    for _ in range(100):
        items = (await client.get("/executions", params={"workflow": "report"})).json()["items"]
        if items:
            break
        await asyncio.sleep(0.1)
    assert items, "the schedule did not fire"
    assert items[0]["schedule"]["id"] == made["id"]
    slot = datetime.fromisoformat(items[0]["schedule"]["slot"])
    assert slot.microsecond == 0
    execution = (await client.get(f"/execution/{items[0]['executionId']}")).json()
    assert execution["schedule"] == items[0]["schedule"]
    assert execution["input"] == {"region": "eu"}
    await client.patch(f"/schedules/{made['id']}", json={"paused": True})
    one = (await client.get(f"/schedules/{made['id']}")).json()
    assert (
        one["fired"] >= 1 and one["recentExecutions"][-1]["slot"] == items[-1]["schedule"]["slot"]
    )


async def test_schedule_changes_are_audited(client: httpx.AsyncClient, registered: None) -> None:
    made = (await client.post("/schedules", json=BODY)).json()
    await client.patch(f"/schedules/{made['id']}", json={"paused": True})
    await client.delete(f"/schedules/{made['id']}")
    rows = (await client.get("/audit")).json()["items"]
    actions = [(r["action"], r["target"]) for r in rows if r["action"].startswith("schedule.")]
    target = f"schedules/{made['id']}"
    assert actions == [("schedule.delete", target), ("schedule.patch", target),
                       ("schedule.post", target)]  # fmt: skip


async def test_another_namespaces_schedule_is_404(client: httpx.AsyncClient, db_url: str) -> None:
    acme = make_key(db_url, "acme-admin", "read,run,control,admin", namespace="acme")
    beta = make_key(db_url, "beta-admin", "read,run,control,admin", namespace="beta")
    assert (await client.post("/workflows", json=WORKFLOW, headers=bearer(acme))).status_code == 201
    made = await client.post("/schedules", json=BODY, headers=bearer(acme))
    assert made.status_code == 201, made.text
    path = f"/schedules/{made.json()['id']}"
    for method, body in (("GET", None), ("PATCH", {"paused": True}), ("DELETE", None)):
        answer = await client.request(method, path, json=body, headers=bearer(beta))
        assert answer.status_code == 404, (method, answer.text)
    assert (await client.get("/schedules", headers=bearer(beta))).json()["items"] == []
    # beta has no workflow of that name: it cannot schedule acme's either
    other = await client.post("/schedules", json=BODY, headers=bearer(beta))
    assert other.status_code == 404
    assert (await client.get(path, headers=bearer(acme))).json()["paused"] is False
    runner = make_key(db_url, "acme-runner", "read,run", namespace="acme")
    assert (await client.get("/schedules", headers=bearer(runner))).status_code == 403


AUTO = {
    "name": "warmup",
    "version": "1",
    "autoStart": True,
    "nodes": [{"id": "a", "type": "transform", "params": {"ok": True}}],
}


async def test_an_auto_start_version_runs_once_when_registered(client: httpx.AsyncClient) -> None:
    made = await client.post("/workflows", json=AUTO)
    assert made.status_code == 201, made.text
    started = made.json()["autoStart"]
    assert started["created"] is True
    execution = (await client.get(f"/execution/{started['executionId']}")).json()
    assert execution["workflowVersion"] == "1" and execution["metadata"]["autoStart"] is True
    assert (await client.post("/workflows", json=AUTO)).status_code == 409
    second = await client.post("/workflows", json={**AUTO, "version": "2"})
    assert second.json()["autoStart"]["executionId"] != started["executionId"]
    items = (await client.get("/executions", params={"workflow": "warmup"})).json()["items"]
    assert sorted(i["workflowVersion"] for i in items) == ["1", "2"]
    plain = await client.post("/workflows", json={**AUTO, "version": "3", "autoStart": False})
    assert "autoStart" not in plain.json()


async def test_an_auto_start_that_needs_input_is_refused_and_not_registered(
    client: httpx.AsyncClient,
) -> None:
    needs = {**AUTO, "inputSchema": {"type": "object", "required": ["region"]}}
    answer = await client.post("/workflows", json=needs)
    assert answer.status_code == 422 and problem(answer)[0] == "input_invalid"
    assert (await client.get("/workflows/warmup")).status_code == 404


async def test_dashboard_lists_schedules_next_fires_runs_and_a_pause_button(
    client: httpx.AsyncClient, registered: None
) -> None:
    made = (await client.post("/schedules", json={**BODY, "everyMs": 1000})).json()
    for _ in range(100):
        runs = (await client.get(f"/schedules/{made['id']}")).json()["recentExecutions"]
        if runs:
            break
        await asyncio.sleep(0.1)
    assert runs, "the schedule did not fire"
    page = await client.get("/ui/schedules")
    assert page.status_code == 200
    html = page.text
    assert f'href="/ui/schedules/{made["id"]}"' in html and "every 1 s" in html
    assert f'href="/ui/executions/{runs[-1]["executionId"]}"' in html
    assert 'class="schedule-toggle"' in html and ">Pause</button>" in html
    await client.patch(f"/schedules/{made['id']}", json={"paused": True})
    one = await client.get(f"/ui/schedules/{made['id']}")
    assert one.status_code == 200 and ">Resume</button>" in one.text
    assert runs[-1]["executionId"][:8] in one.text
    listing = await client.get("/ui/")
    assert f'href="/ui/schedules/{made["id"]}"' in listing.text  # the run is marked scheduled
    execution = await client.get(f"/ui/executions/{runs[-1]['executionId']}")
    assert "scheduled by" in execution.text
    assert (await client.get(f"/ui/schedules/{uuid.uuid4()}")).status_code == 404
