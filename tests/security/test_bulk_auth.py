"""`POST /workflow/runs` under auth: the `run` scope, and the key's namespace for every run."""

from __future__ import annotations

import httpx

from tests.security.conftest import TRANSFORM, bearer, make_key

REGISTERED = {"name": "beta-only", "version": "1", "nodes": TRANSFORM["nodes"]}


async def test_bulk_runs_need_the_run_scope(client: httpx.AsyncClient, db_url: str) -> None:
    reader = make_key(db_url, "reader", "read")
    body = {"runs": [{"workflow": TRANSFORM, "input": {"n": 1}}]}
    anonymous = await client.post("/workflow/runs", json=body)
    assert anonymous.status_code == 401
    denied = await client.post("/workflow/runs", json=body, headers=bearer(reader))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"


async def test_every_run_of_a_bulk_request_is_in_the_keys_namespace(
    client: httpx.AsyncClient, db_url: str
) -> None:
    acme = make_key(db_url, "acme-ci", "read,run", namespace="acme")
    beta = make_key(db_url, "beta-ci", "read,run", namespace="beta")
    beta_admin = make_key(db_url, "beta-admin", "admin", namespace="beta")
    registered = await client.post("/workflows", json=REGISTERED, headers=bearer(beta_admin))
    assert registered.status_code == 201, registered.text
    taken = await client.post(
        "/workflow/runs",
        json={"runs": [{"workflow": TRANSFORM, "idempotencyKey": "shared-key"}]},
        headers=bearer(beta),
    )
    assert taken.json()["results"][0]["httpStatus"] == 202

    runs = [
        {"workflow": TRANSFORM, "input": {"n": 1}},
        {"workflowId": "beta-only"},  # another namespace's workflow: not found
        {"workflow": TRANSFORM, "idempotencyKey": "shared-key"},  # another namespace's key
    ]
    answer = await client.post("/workflow/runs", json={"runs": runs}, headers=bearer(acme))
    results = answer.json()["results"]
    assert [r["httpStatus"] for r in results] == [202, 404, 409]
    assert results[1]["error"]["code"] == "workflow_not_found"
    assert results[2]["error"]["code"] == "idempotency_conflict"
    path = f"/execution/{results[0]['execution']['executionId']}"
    assert (await client.get(path, headers=bearer(acme))).status_code == 200
    assert (await client.get(path, headers=bearer(beta))).status_code == 404
