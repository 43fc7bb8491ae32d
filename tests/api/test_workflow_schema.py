"""The workflow definition's schema is in OpenAPI, and validation still reports every problem."""

from __future__ import annotations

from typing import Any

import httpx


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


async def test_openapi_run_body_carries_the_workflow_definition_schema(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    body_ref = spec["paths"]["/workflow/run"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    workflow = resolve(spec, body_ref)["properties"]["workflow"]
    definition = resolve(spec, next(s for s in workflow["anyOf"] if "$ref" in s))
    assert {"nodes", "onFailure", "maxConcurrency", "inputSchema"} <= set(definition["properties"])
    node = resolve(spec, definition["properties"]["nodes"]["items"])
    retry = resolve(spec, next(s for s in node["properties"]["retry"]["anyOf"] if "$ref" in s))
    assert {"initialDelay", "maxDelay", "maxAttempts", "backoff", "jitter"} <= set(
        retry["properties"]
    )


async def test_run_still_reports_every_problem_of_the_definition(
    client: httpx.AsyncClient,
) -> None:
    workflow = {
        "nodes": [
            {"id": "a", "type": "no.such.type"},
            {"id": "b", "type": "delay", "params": {"ms": -5}},
            {"id": "c", "type": "transform", "retry": {"initialDelay": "soon"}},
        ]
    }

    response = await client.post("/workflow/run", json={"workflow": workflow})

    assert response.status_code == 422
    problems = response.json()["error"]["details"]
    assert {p.get("nodeId") for p in problems} >= {"a", "b", "c"}
