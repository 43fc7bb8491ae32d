"""Prometheus: the API's /metrics shows the queue; each worker serves its own /metrics."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.support.workers import worker_process

SLOW = {
    "name": "metered",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"x": 1}},
        {"id": "wait", "type": "delay", "params": {"ms": 50}, "dependsOn": ["a"]},
    ],
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def eventually(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_sample_ms": 50})


def test_the_api_shows_queue_depth_and_a_worker_serves_its_own_metrics(
    api_url: str, api_settings: Settings, engine: AsyncEngine
) -> None:
    body = {"workflow": SLOW, "input": {}, "mode": "queued"}
    for _ in range(2):
        assert httpx.post(f"{api_url}/workflow/run", json=body).status_code == 202

    def queued_two() -> str | None:
        text = httpx.get(f"{api_url}/metrics").text
        depth = value(text, "turnout_queue_depth")
        return text if depth == 2 else None

    text = eventually(queued_two)
    assert value(text, "turnout_executions", status="pending", mode="queued") == 2
    assert (value(text, "turnout_queue_oldest_pending_age_seconds") or 0) > 0

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"TURNOUT_WORKER_METRICS_PORT": str(port), "TURNOUT_METRICS_SAMPLE_MS": "50"}
    with worker_process(api_settings, **env):

        def ran_both() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            done = value(
                text, "turnout_step_duration_seconds_count", node_type="delay", status="completed"
            )
            # Settled after the step's count goes up: wait for both, not just the steps.
            settled = value(text, "turnout_executions_settled_total", status="completed")
            both = done == 2 and settled == 2
            return text if both and value(text, "turnout_queue_depth") == 0 else None

        worker_text = eventually(ran_both)
    assert value(worker_text, "turnout_executions_settled_total", status="completed") == 2
    # The 50 ms delays land in the 0.05..0.1 s buckets.
    le_01 = value(
        worker_text,
        "turnout_step_duration_seconds_bucket",
        node_type="delay",
        status="completed",
        le="0.1",
    )
    assert le_01 == 2
    assert value(worker_text, "turnout_lease_takeovers_total") == 0
