"""A run that ends while a batch of pure steps is being written keeps every step and event."""

from __future__ import annotations

from typing import Any

from turnout import Client

# The delay matches the checkpoint interval (200 ms), so the periodic flush of the first two
# steps is still writing when the run ends and the recorder stops.
RACE: dict[str, Any] = {
    "name": "race",
    "nodes": [
        {"id": "greet", "type": "transform", "params": {"text": "hi"}},
        {"id": "pause", "type": "delay", "params": {"ms": 200}, "dependsOn": ["greet"]},
        {"id": "shout", "type": "transform", "params": {"t": "{{ greet.text }}"},
         "dependsOn": ["pause"]},
    ],
}  # fmt: skip


def test_every_step_and_event_is_kept_when_the_run_ends_mid_flush(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        for _ in range(5):
            execution = client.run(RACE, mode="queued", wait=True, wait_timeout=20)
            assert [s.node_id for s in execution.steps] == ["greet", "pause", "shout"]
            started = [e.node_id for e in client.stream(execution.id) if e.type == "step.started"]
            assert started == ["greet", "pause", "shout"]
