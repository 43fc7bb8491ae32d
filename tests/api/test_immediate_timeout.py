"""What the README says about an immediate run whose `options.timeout` is below the budget."""

from __future__ import annotations

import httpx


async def test_immediate_run_past_a_timeout_below_the_budget_fails_and_is_not_promoted(
    client: httpx.AsyncClient,
) -> None:
    workflow = {"nodes": [{"id": "slow", "type": "delay", "params": {"ms": 5000}}]}

    response = await client.post(
        "/workflow/run",
        json={"workflow": workflow, "mode": "immediate", "options": {"timeout": 200}},
    )

    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["status"] == "failed"
    assert execution["error"]["code"] == "timeout"
    assert execution["steps"][0]["status"] == "cancelled"
    events = await client.get(f"/execution/{execution['executionId']}/stream")
    assert "execution.promoted" not in events.text
