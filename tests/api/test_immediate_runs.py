"""Immediate runs over HTTP: POST -> 200 with the finished execution, persisted."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

THREE_STEPS: dict[str, Any] = {
    "name": "three",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "transform", "params": {"double": "{{ a.n * 2 }}"}},
        {"id": "c", "type": "transform", "params": {"msg": "double is {{ b.double }}"}},
    ],
    "output": {"double": "{{ b.double }}", "msg": "{{ c.msg }}"},
}


FAIL_NODE: dict[str, Any] = {"id": "f", "type": "fail", "params": {"message": "nope"}}


async def run(client: httpx.AsyncClient, workflow: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.post(
        "/workflow/run", json={"workflow": workflow, "mode": "immediate", **body}
    )


async def test_immediate_run_returns_finished_execution(client: httpx.AsyncClient) -> None:
    response = await run(client, THREE_STEPS, input={"n": 21})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["mode"] == "immediate"
    assert body["result"] == {"double": 42, "msg": "double is 42"}
    assert [s["nodeId"] for s in body["steps"]] == ["a", "b", "c"]
    assert all(s["status"] == "completed" and s["attempt"] == 1 for s in body["steps"])
    assert body["progress"] == {"done": 3, "total": 3}
    assert body["durationMs"] is not None and body["completedAt"].endswith("Z")
    assert body["complexity"]["nodeCount"] == 3

    stored = (await client.get(f"/execution/{body['executionId']}")).json()
    assert stored == body  # the answer is exactly what was persisted


async def test_failed_step_fails_execution_with_error(client: httpx.AsyncClient) -> None:
    workflow = {"nodes": [{"id": "x", "type": "fail", "params": {"message": "bad order"}}]}
    body = (await run(client, workflow)).json()
    assert body["status"] == "failed"
    assert body["error"]["nodeId"] == "x"
    assert body["error"]["message"] == "bad order"


async def test_unknown_execution_is_404_and_bad_id_422(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/execution/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "execution_not_found"
    malformed = await client.get("/execution/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "request_invalid"


async def test_invalid_workflow_lists_every_problem(client: httpx.AsyncClient) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "transform", "params": {"v": "{{ ghost.x }}"}},
            {"id": "a", "type": "nope"},
            {"id": "d", "type": "delay", "params": {"ms": "soon"}},
        ]
    }
    response = await run(client, workflow)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "workflow_invalid"
    codes = {d["code"] for d in error["details"]}
    assert {"duplicate_id", "unknown_type", "unknown_reference", "bad_params"} <= codes
    listed = await client.get("/executions")
    assert listed.json()["items"] == []  # nothing was created


async def test_input_not_matching_schema_is_422(client: httpx.AsyncClient) -> None:
    workflow = {**THREE_STEPS, "inputSchema": {"type": "object", "required": ["n"]}}
    response = await run(client, workflow, input={"m": 1})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "input_invalid"
    assert "n" in response.json()["error"]["details"][0]["message"]


async def test_body_too_large_is_413(client: httpx.AsyncClient) -> None:
    huge = {"blob": "x" * (6 * 1024 * 1024)}
    response = await run(client, THREE_STEPS, input=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "immediate"},
        {"workflow": {"nodes": []}, "workflowId": "x"},
        {"workflow": THREE_STEPS, "mode": "sometimes"},
        {"workflow": THREE_STEPS, "options": {"priority": -1}},
    ],
)
async def test_malformed_requests_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/workflow/run", json=body)
    assert response.status_code == 422
    assert set(response.json()["error"]) == {"code", "message", "details"}


async def test_not_json_is_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/workflow/run", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_seed_paths_answer_like_main_ones(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/workflow/run", json={"workflow": THREE_STEPS, "input": {"n": 1}, "mode": "immediate"}
    )
    assert response.status_code == 200
    execution_id = response.json()["executionId"]
    seed = await client.get(f"/api/workflow/execution/{execution_id}")
    assert seed.json()["result"] == {"double": 2, "msg": "double is 2"}


async def test_list_filters_and_paginates(client: httpx.AsyncClient) -> None:
    for n in range(5):
        tags = ["even"] if n % 2 == 0 else ["odd"]
        await run(client, THREE_STEPS, input={"n": n}, options={"tags": tags})
    await run(client, {"nodes": [{"id": "x", "type": "fail", "params": {}}]})
    page1 = (await client.get("/executions", params={"limit": 2})).json()
    assert len(page1["items"]) == 2 and page1["nextCursor"]
    seen = [i["executionId"] for i in page1["items"]]
    cursor = page1["nextCursor"]
    while cursor:
        page = (await client.get("/executions", params={"limit": 2, "cursor": cursor})).json()
        seen += [i["executionId"] for i in page["items"]]
        cursor = page["nextCursor"]
    assert len(seen) == len(set(seen)) == 6
    evens = (await client.get("/executions", params={"tag": "even"})).json()["items"]
    assert len(evens) == 3 and all(i["tags"] == ["even"] for i in evens)
    failed = (await client.get("/executions", params={"status": "failed"})).json()["items"]
    assert len(failed) == 1
    by_mode = (await client.get("/executions", params={"mode": "queued"})).json()["items"]
    assert by_mode == []
    bad = await client.get("/executions", params={"cursor": "garbage!"})
    assert bad.status_code == 422


async def test_idempotency_key_returns_same_execution(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"workflow": THREE_STEPS, "input": {"n": 2}, "mode": "immediate"}
    first = await client.post("/workflow/run", json=body, headers=headers)
    second = await client.post("/workflow/run", json=body, headers=headers)
    assert first.json()["executionId"] == second.json()["executionId"]
    other = await client.post("/workflow/run", json={**body, "input": {"n": 3}}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def metric_values(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    """Each counter sample of /metrics, by name and labels (as `k=v,...`)."""
    text = (await client.get("/metrics")).text
    return {
        (sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_submitted_and_settled_runs(client: httpx.AsyncClient) -> None:
    submitted = ("turnout_executions_submitted_total", "mode=immediate")
    completed = ("turnout_executions_settled_total", "status=completed")
    failed = ("turnout_executions_settled_total", "status=failed")
    before = await metric_values(client)
    for n in range(2):
        assert (await run(client, THREE_STEPS, input={"n": n})).status_code == 200
    assert (await run(client, {"nodes": [FAIL_NODE]})).status_code == 200
    after = await metric_values(client)
    # The counters are process-wide: earlier tests left series, so count this test's runs only.
    assert after[submitted] - before.get(submitted, 0.0) == 3
    assert after[completed] - before.get(completed, 0.0) == 2
    assert after[failed] - before.get(failed, 0.0) == 1
