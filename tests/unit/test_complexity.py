"""The ComplexityAnalyzer's rule, boundary by boundary (pure: no I/O)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.execution.complexity import (
    ComplexityAnalyzer,
    ComplexityThresholds,
    critical_path_ms,
    dag_width,
)
from app.nodes.registry import NodeRegistry, default_registry
from app.workflows.graph import CompiledWorkflow, compile_workflow

REGISTRY: NodeRegistry = default_registry(plugins=False)


def compile_(nodes: list[dict[str, Any]]) -> CompiledWorkflow:
    return compile_workflow({"nodes": nodes}, REGISTRY, max_nodes=20_000)


def chain(n: int, node_type: str = "noop") -> list[dict[str, Any]]:
    return [
        {"id": f"n{i}", "type": node_type, **({"dependsOn": [f"n{i - 1}"]} if i else {})}
        for i in range(n)
    ]


def delay(node_id: str, ms: int, after: list[str] | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "delay", "params": {"ms": ms}, "dependsOn": after or []}


def http(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "type": "http.request", "params": {"url": "https://example.com"}}


def loop(node_id: str, template_type: str = "transform") -> dict[str, Any]:
    params: dict[str, Any] = {"v": 1} if template_type == "transform" else {"url": "https://x.io"}
    return {
        "id": node_id,
        "type": "foreach",
        "params": {"items": [1, 2], "node": {"type": template_type, "params": params}},
    }


HUMAN = {"id": "h", "type": "human.input", "params": {"prompt": "ok?"}}
RELAXED = ComplexityThresholds(queue_human_input=False, queue_external_loops=False)


@pytest.mark.parametrize(
    ("nodes", "thresholds", "queue", "reason"),
    [
        (chain(1), None, False, "simple"),
        (chain(10), None, False, "simple"),
        (chain(11), None, True, "11 nodes > 10"),
        (chain(11), ComplexityThresholds(max_nodes=11), False, "simple"),
        (chain(12), ComplexityThresholds(max_nodes=11), True, "12 nodes > 11"),
        ([delay("d", 30_000)], None, False, "simple"),
        ([delay("d", 30_001)], None, True, "estimated 30.0 s > 30.0 s"),
        ([delay("a", 15_000), delay("b", 15_000, ["a"])], None, False, "simple"),
        ([delay("a", 15_000), delay("b", 15_001, ["a"])], None, True, "estimated"),
        ([delay("a", 20_000), delay("b", 20_000)], None, False, "simple"),  # parallel
        ([delay("d", 40_000)], ComplexityThresholds(max_duration_ms=60_000), False, "simple"),
        ([HUMAN], None, True, "needs human input"),
        ([HUMAN], RELAXED, False, "simple"),
        ([http("x")], None, False, "simple"),
        ([loop("l")], None, False, "simple"),
        ([http("x"), loop("l")], None, True, "external calls (1) together with loops (1)"),
        ([loop("l", "http.request")], None, True, "external calls (1) together with loops (1)"),
        ([http("x"), loop("l")], RELAXED, False, "simple"),
        (
            [*chain(11), HUMAN, http("x"), loop("l"), delay("d", 31_000)],
            None,
            True,
            "15 nodes > 10",
        ),
    ],
)
def test_rule(
    nodes: list[dict[str, Any]], thresholds: ComplexityThresholds | None, queue: bool, reason: str
) -> None:
    result = ComplexityAnalyzer(thresholds, registry=REGISTRY).analyze(compile_(nodes))
    assert result.queue is queue
    assert any(reason in r for r in result.reasons), result.reasons
    assert result.to_dict()["recommendedMode"] == ("queued" if queue else "immediate")


def test_every_fired_rule_is_a_reason() -> None:
    nodes = [*chain(11), HUMAN, http("x"), loop("l"), delay("d", 31_000)]
    reasons = ComplexityAnalyzer(registry=REGISTRY).analyze(compile_(nodes)).reasons
    assert len(reasons) == 4


def test_counts_in_the_result() -> None:
    nodes = [http("a"), http("b"), loop("l", "http.request"), HUMAN]
    result = ComplexityAnalyzer(registry=REGISTRY).analyze(compile_(nodes)).to_dict()
    assert result["nodeCount"] == 4
    assert result["externalCalls"] == 3
    assert result["loops"] == 1
    assert result["humanInput"] is True
    assert result["parallelPaths"] == 4
    assert set(result) >= {
        "score",
        "nodeCount",
        "externalCalls",
        "loops",
        "parallelPaths",
        "humanInput",
        "estimatedDurationMs",
        "reasons",
    }


def test_history_refines_the_estimate() -> None:
    workflow = compile_(chain(3))
    analyzer = ComplexityAnalyzer()
    assert analyzer.analyze(workflow).queue is False
    slow = analyzer.analyze(workflow, history={"n1": 31_000})
    assert slow.queue is True
    assert slow.estimated_duration_ms > 31_000


@pytest.mark.parametrize(
    ("nodes", "width"),
    [
        (chain(5), 1),
        ([delay("a", 1), delay("b", 1, ["a"]), delay("c", 1, ["a"]), delay("d", 1, ["b", "c"])], 2),
        ([delay(f"w{i}", 1) for i in range(7)], 7),
        ([*chain(3), delay("x", 1), delay("y", 1, ["x"]), delay("z", 1, ["y"])], 2),
        # b, c and d are mutually independent although they sit on two different levels
        ([delay("a", 1), delay("b", 1, ["a"]), delay("c", 1), delay("d", 1, ["a"])], 3),
        (
            [
                delay("a", 1),
                delay("b", 1, ["a"]),
                delay("x", 1),
                delay("y", 1, ["x"]),
                delay("c", 1, ["b", "y"]),
            ],
            2,
        ),
    ],
)
def test_parallel_paths_is_the_dag_width(nodes: list[dict[str, Any]], width: int) -> None:
    assert dag_width(compile_(nodes)) == width


def test_critical_path_takes_the_longest_branch() -> None:
    nodes = [
        delay("a", 100),
        delay("b", 5_000, ["a"]),
        delay("c", 50, ["a"]),
        delay("d", 1, ["b", "c"]),
    ]
    assert critical_path_ms(compile_(nodes), {}) == 5_101


@pytest.mark.parametrize("shape", ["chain", "wide"])
def test_ten_thousand_nodes_analyse_quickly(shape: str) -> None:
    if shape == "chain":
        nodes = chain(10_000)
    else:
        nodes = [{"id": "root", "type": "noop"}] + [
            {"id": f"n{i}", "type": "noop", "dependsOn": ["root"]} for i in range(9_999)
        ]
    workflow = compile_(nodes)
    started = time.perf_counter()
    result = ComplexityAnalyzer().analyze(workflow)
    elapsed = time.perf_counter() - started
    assert result.parallel_paths == (1 if shape == "chain" else 9_999)
    assert elapsed < 1.0  # a regression guard against quadratic work, not the target


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        ({"id": "c", "type": "workflow", "params": {"workflow": "w"}}, "waits durably (workflow)"),
        ({"id": "e", "type": "wait.event", "params": {"name": "x"}}, "waits durably (wait.event)"),
    ],
)
def test_a_durable_wait_on_a_child_or_an_event_is_queued(node: dict[str, Any], reason: str) -> None:
    result = ComplexityAnalyzer(registry=REGISTRY).analyze(compile_([node]))
    assert result.queue and reason in result.reasons
    assert result.external_calls == (1 if node["type"] == "workflow" else 0)
