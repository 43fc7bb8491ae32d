"""Hostile expressions over HTTP: the step fails with `expression_limit`, the API stays up."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

CPU = "{{ len([len(sorted('a'*9999)) for x in 'a'*9999]) }}"
MEMORY = "{{ len(''.join(['a'*99999 for x in 'a'*9999])) }}"


def _node(where: str, expression: str) -> dict[str, Any]:
    if where == "transform":
        return {"id": "t", "type": "transform", "params": {"v": expression}}
    if where == "when":
        inner = expression.strip("{} ")
        return {"id": "t", "type": "transform", "params": {}, "when": inner}
    return {"id": "t", "type": "condition", "params": {"expr": expression.strip("{} ")}}


@pytest.mark.parametrize("where", ["transform", "when", "condition"])
@pytest.mark.parametrize("expression", [CPU, MEMORY], ids=["cpu", "memory"])
async def test_a_hostile_expression_fails_its_step_with_expression_limit(
    client: httpx.AsyncClient, where: str, expression: str
) -> None:
    response = await client.post(
        "/workflow/run",
        json={"workflow": {"nodes": [_node(where, expression)]}, "mode": "immediate"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed"
    step = body["steps"][0]
    assert step["status"] == "failed"
    assert step["error"]["code"] == "expression_limit"
    assert "operations" in step["error"]["message"]
    assert step["attempt"] <= 1  # a limit is not retried (a `when` fails before attempt 1)
    assert (await client.get("/healthz")).status_code == 200
