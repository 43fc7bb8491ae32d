"""The analyzer learns from history: a registered version's measured step durations replace
the per-type guesses on its next runs."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from tests.observability.peers import slow_peer


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"complexity_max_duration_ms": 1_000})


async def test_a_step_that_proved_slow_sends_the_next_auto_run_to_the_queue(
    client: httpx.AsyncClient,
) -> None:
    with slow_peer(2.0) as peer:
        workflow = {
            "name": "slow-call",
            "version": "1",
            "nodes": [{"id": "call", "type": "http.request", "params": {"url": f"{peer}/slow"}}],
        }
        assert (await client.post("/workflows", json=workflow)).status_code == 201
        body = {"workflowId": "slow-call", "version": "1", "input": {}}
        first = await client.post("/workflow/run", json=body)
        # Nothing measured yet: the per-type guess keeps it under the 1 s threshold.
        assert first.status_code == 200, first.text
        assert first.json()["mode"] == "immediate"
        assert first.json()["steps"][0]["durationMs"] >= 2_000
        second = await client.post("/workflow/run", json=body)
    assert second.status_code == 202, second.text
    complexity = second.json()["complexity"]
    assert second.json()["mode"] == "queued"
    assert complexity["estimatedDurationMs"] >= 2_000
    assert any(
        r.startswith("estimated 2.0 s (measured from past runs) > 1.0 s")
        for r in complexity["reasons"]
    ), complexity["reasons"]
