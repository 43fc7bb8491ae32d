"""What each step cost (wall, CPU, bytes, output size) and the execution's totals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.runtime import build_runtime
from tests.observability.peers import BurnNode, echo_peer
from tests.servers import run_server


@pytest.fixture
def api_url(settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    registry = NodeRegistry([*builtin_types(), BurnNode()])
    runtime = build_runtime(settings, "api", registry=registry)
    with run_server(create_app(settings, runtime=runtime)) as url:
        yield url


async def test_cpu_bound_step_records_its_cpu_and_a_delay_records_none(api_url: str) -> None:
    with echo_peer() as (peer, _):
        workflow = {
            "name": "costs",
            # The burn and the delay run at the same time on one loop: CPU must not leak
            # from one step to the other.
            "nodes": [
                {"id": "burn", "type": "test.burn", "params": {"ms": 300}},
                {"id": "wait", "type": "delay", "params": {"ms": 300}},
                {
                    "id": "call",
                    "type": "http.request",
                    "params": {"url": f"{peer}/echo", "method": "POST", "body": "0123456789"},
                },
            ],
        }
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
            answer = await client.post("/workflow/run", json={"workflow": workflow, "input": {}})
            assert answer.status_code == 200, answer.text
            run = (await client.get(f"/execution/{answer.json()['executionId']}")).json()
            analytics = (await client.get("/analytics/workflows")).json()["items"]
    steps = {s["nodeId"]: s for s in run["steps"]}
    burn, wait, call = steps["burn"]["usage"], steps["wait"]["usage"], steps["call"]["usage"]
    assert burn["wallMs"] >= 290
    # CPU >= 80 % of wall time. The OS may give a spinning thread less than its wall time on
    # a loaded machine: what the thread could get (`share`, 1.0 when idle) is the 100 %.
    share = steps["burn"]["output"]["share"]
    assert burn["cpuMs"] >= 0.8 * share * burn["wallMs"], (burn, share)
    assert wait["wallMs"] >= 290
    assert wait["cpuMs"] < 0.05 * wait["wallMs"], wait
    assert call["bytesSent"] == 10
    assert call["bytesReceived"] == 64
    assert burn["outputBytes"] == len(json.dumps(steps["burn"]["output"], separators=(",", ":")))
    totals = run["usage"]
    assert totals["bytesSent"] == 10
    assert totals["bytesReceived"] == 64
    assert totals["cpuMs"] == pytest.approx(burn["cpuMs"] + wait["cpuMs"] + call["cpuMs"], abs=0.01)
    # The analytics read the totals written when the run came to rest.
    (costs,) = [i for i in analytics if i["workflow"] == "costs"]
    assert costs["usage"]["cpuMsMean"] == pytest.approx(totals["cpuMs"], abs=0.01)
    assert costs["usage"]["bytesReceivedMean"] == 64
