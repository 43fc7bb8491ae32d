"""The dashboard shows the analytics on a workflow's page and the usage on an execution's."""

from __future__ import annotations

import re

import httpx

FLOW = {
    "name": "dash-stats",
    "version": "7",
    "nodes": [{"id": "a", "type": "transform", "params": {"x": 1}}],
}


async def test_the_workflow_page_shows_its_analytics(client: httpx.AsyncClient) -> None:
    assert (await client.post("/workflows", json=FLOW)).status_code == 201
    body = {"workflowId": "dash-stats", "version": "7", "input": {}}
    for _ in range(3):
        assert (await client.post("/workflow/run", json=body)).status_code == 200
    page = await client.get("/ui/workflows/dash-stats")
    assert page.status_code == 200
    analytics = page.text.split('id="analytics"')[1].split("</table>")[0]
    row = re.search(r'<tr data-version="7">(.*?)</tr>', analytics, re.S)
    assert row is not None, analytics
    cells = re.findall(r"<td>(.*?)</td>", row[1], re.S)
    assert cells[:3] == ["7", "3", "100.0 %"]
    hourly = page.text.split('id="timeseries"')[1].split("</table>")[0]
    assert "<td>3</td>" in hourly


async def test_the_execution_page_shows_what_the_steps_cost(client: httpx.AsyncClient) -> None:
    answer = await client.post("/workflow/run", json={"workflow": FLOW, "input": {}})
    execution_id = answer.json()["executionId"]
    page = await client.get(f"/ui/executions/{execution_id}")
    assert page.status_code == 200
    assert "Resources" in page.text and "B received" in page.text
