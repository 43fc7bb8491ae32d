"""Metric children looked up once: the same series as `labels()`, without its cost."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from app.engine.state import StepState
from app.metrics import Children
from app.observability.steps import observe_step


def test_a_child_is_the_labels_child_and_is_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    seconds = Histogram("t_seconds", "test", ["node_type", "status"], registry=registry)
    children = Children(seconds)
    first = children("transform", "completed")
    assert first is seconds.labels(node_type="transform", status="completed")
    calls: list[Any] = []
    real = seconds.labels

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(seconds, "labels", counted)
    first.observe(0.002)
    assert children("transform", "completed") is first and calls == []
    assert children("transform", "failed") is not first and len(calls) == 1
    assert (
        registry.get_sample_value(
            "t_seconds_count", {"node_type": "transform", "status": "completed"}
        )
        == 1.0
    )


def test_a_counter_child_counts_under_its_label() -> None:
    registry = CollectorRegistry()
    settled = Counter("t_settled_total", "test", ["status"], registry=registry)
    count = Children(settled)
    for _ in range(3):
        count("completed").inc()
    assert registry.get_sample_value("t_settled_total", {"status": "completed"}) == 3.0


def test_a_step_is_still_observed_under_its_type_and_status() -> None:
    labels = {"node_type": "cached-metrics-test", "status": "failed"}
    before = REGISTRY.get_sample_value("turnout_step_duration_seconds_count", labels) or 0.0
    for attempt in (1, 2):
        with (
            pytest.raises(RuntimeError),
            observe_step("e", labels["node_type"], StepState("a", "a", attempt=attempt), {}),
        ):
            raise RuntimeError("boom")
    after = REGISTRY.get_sample_value("turnout_step_duration_seconds_count", labels)
    assert after == before + 2
    cpu = {"node_type": labels["node_type"]}
    assert REGISTRY.get_sample_value("turnout_step_cpu_seconds_total", cpu) is not None
