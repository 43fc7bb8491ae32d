"""The DAG runner, observed from outside: timing, ordering, retries, skips, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.engine.runner import Runner
from app.engine.state import OutcomeKind, RunOutcome, StepState
from app.engine.status import StepStatus
from app.engine.stops import RunControl, StopKind
from app.nodes.base import Services
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.workflows.graph import compile_workflow
from tests.support.executions import wait_until
from tests.support.nodes import FlakyNode, MemoryObserver, SleepNode, reset_counters


@pytest.fixture
def registry() -> NodeRegistry:
    reset_counters()
    return NodeRegistry([*builtin_types(), SleepNode(), FlakyNode()])


@pytest.fixture
async def runner(registry: NodeRegistry) -> AsyncIterator[Runner]:
    async with httpx.AsyncClient() as client:
        yield Runner(Services(Settings(), client), registry, rand=lambda: 0.0)


async def run(
    runner: Runner,
    registry: NodeRegistry,
    workflow: dict[str, Any],
    input_data: Any = None,
    *,
    control: RunControl | None = None,
    steps: dict[str, StepState] | None = None,
) -> tuple[RunOutcome, MemoryObserver, dict[str, StepState]]:
    compiled = compile_workflow(workflow, registry, max_nodes=1000)
    observer = MemoryObserver()
    steps = steps if steps is not None else {}
    outcome = await runner.run(
        compiled,
        input_data or {},
        execution_id="exec-1",
        observer=observer,
        control=control,
        steps=steps,
    )
    return outcome, observer, outcome.steps


def sleep(node_id: str, ms: int, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "test.sleep", "params": {"ms": ms, "value": value}, **extra}


async def test_independent_nodes_run_in_parallel(runner: Runner, registry: NodeRegistry) -> None:
    outcome, _, _ = await run(runner, registry, {"nodes": [sleep("a", 200, 1), sleep("b", 200, 2)]})
    assert outcome.kind == OutcomeKind.COMPLETED
    assert outcome.result == {"a": 1, "b": 2}
    assert SleepNode.peak == 2


async def test_max_concurrency_one_serialises(runner: Runner, registry: NodeRegistry) -> None:
    await run(
        runner,
        registry,
        {"maxConcurrency": 1, "nodes": [sleep("a", 100), sleep("b", 100), sleep("c", 100)]},
    )
    assert SleepNode.peak == 1
    assert SleepNode.runs == {"a": 1, "b": 1, "c": 1}


async def test_references_order_steps_and_pass_data(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {
        "nodes": [
            {"id": "b", "type": "transform", "params": {"total": "{{ a.n * 2 }}"}},
            {"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}},
        ],
        "output": {"total": "{{ b.total }}", "text": "n={{ a.n }}"},
    }
    outcome, observer, _ = await run(runner, registry, workflow, {"n": 21})
    assert outcome.result == {"total": 42, "text": "n=21"}
    completed = [d["stepKey"] for t, d in observer.events if t == "step.completed"]
    assert completed == ["a", "b"]


async def test_depends_on_orders_without_data(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {"nodes": [sleep("slow", 100, "s"), sleep("after", 0, "x", dependsOn=["slow"])]}
    _, _, steps = await run(runner, registry, workflow)
    assert steps["after"].started_at is not None and steps["slow"].completed_at is not None
    assert steps["after"].started_at >= steps["slow"].completed_at


async def test_retry_until_success_counts_attempts(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {
        "nodes": [
            {
                "id": "f",
                "type": "test.flaky",
                "params": {"failures": 2, "value": "done"},
                "retry": {"maxAttempts": 3, "initialDelay": 10, "jitter": False},
            }
        ]
    }
    outcome, observer, steps = await run(runner, registry, workflow)
    assert outcome.kind == OutcomeKind.COMPLETED
    assert steps["f"].attempt == 3
    assert observer.types("f").count("step.retrying") == 2
    retry_delays = [d["delayMs"] for t, d in observer.events if t == "step.retrying"]
    assert retry_delays == [10.0, 20.0]  # exponential, no jitter


async def test_retry_exhausted_fails_execution(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {
        "nodes": [
            {
                "id": "f",
                "type": "test.flaky",
                "params": {"failures": 5},
                "retry": {"maxAttempts": 2, "initialDelay": 1, "backoff": "fixed"},
            }
        ]
    }
    outcome, _, steps = await run(runner, registry, workflow)
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None and outcome.error["nodeId"] == "f"
    assert FlakyNode.attempts["f"] == 2
    assert steps["f"].status == StepStatus.FAILED


async def test_non_retryable_error_is_not_retried(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {
        "nodes": [
            {
                "id": "f",
                "type": "test.flaky",
                "params": {"failures": 5, "retryable": False},
                "retry": {"maxAttempts": 5, "initialDelay": 1},
            }
        ]
    }
    outcome, _, _ = await run(runner, registry, workflow)
    assert outcome.kind == OutcomeKind.FAILED
    assert FlakyNode.attempts["f"] == 1


async def test_step_timeout_fails_the_step(runner: Runner, registry: NodeRegistry) -> None:
    started = time.perf_counter()
    outcome, _, steps = await run(runner, registry, {"nodes": [sleep("s", 2000, timeout=100)]})
    assert time.perf_counter() - started < 1
    assert outcome.kind == OutcomeKind.FAILED
    assert steps["s"].error is not None and steps["s"].error["code"] == "step_timeout"


async def test_when_false_skips_and_propagates(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {
        "nodes": [
            {"id": "c", "type": "condition", "params": {"expr": "input.x > 10"}},
            {"id": "big", "type": "transform", "when": "c.result", "params": {"v": 1}},
            {"id": "after", "type": "transform", "params": {"v": "{{ big.v }}"}},
            {"id": "other", "type": "transform", "params": {"v": 2}},
        ]
    }
    outcome, observer, steps = await run(runner, registry, workflow, {"x": 3})
    assert outcome.kind == OutcomeKind.COMPLETED
    assert steps["big"].status == StepStatus.SKIPPED
    assert steps["after"].status == StepStatus.SKIPPED  # every dependency skipped
    assert steps["other"].status == StepStatus.COMPLETED
    assert observer.types("big") == ["step.skipped"]


async def test_on_failure_stop_cancels_running_siblings(
    runner: Runner, registry: NodeRegistry
) -> None:
    workflow = {
        "nodes": [
            {"id": "boom", "type": "fail", "params": {"message": "nope"}},
            sleep("long", 5000),
            sleep("later", 0, dependsOn=["long"]),
        ]
    }
    started = time.perf_counter()
    outcome, _, steps = await run(runner, registry, workflow)
    assert time.perf_counter() - started < 1
    assert outcome.kind == OutcomeKind.FAILED
    assert outcome.error is not None and outcome.error["message"] == "nope"
    assert steps["long"].status == StepStatus.CANCELLED
    assert steps["later"].status == StepStatus.PENDING


async def test_on_failure_continue_runs_independent_branches(
    runner: Runner, registry: NodeRegistry
) -> None:
    workflow = {
        "onFailure": "continue",
        "nodes": [
            {"id": "boom", "type": "fail", "params": {"message": "nope"}},
            {"id": "child", "type": "transform", "params": {"v": "{{ boom }}"}},
            sleep("other", 50, "fine"),
        ],
    }
    outcome, _, steps = await run(runner, registry, workflow)
    assert outcome.kind == OutcomeKind.FAILED
    assert steps["other"].status == StepStatus.COMPLETED
    assert steps["child"].status == StepStatus.SKIPPED
    assert steps["child"].state["skipReason"] == "upstream_failed"


async def test_foreach_keeps_item_order_and_bounds_concurrency(
    runner: Runner, registry: NodeRegistry
) -> None:
    workflow = {
        "nodes": [
            {
                "id": "loop",
                "type": "foreach",
                "params": {
                    "items": "{{ input.items }}",
                    "concurrency": 2,
                    "node": {
                        "type": "test.sleep",
                        "params": {"ms": "{{ item }}", "value": "{{ index }}"},
                    },
                },
            }
        ]
    }
    items = [60, 10, 60, 10, 30, 30]
    outcome, _, steps = await run(runner, registry, workflow, {"items": items})
    assert outcome.result == {"loop": [0, 1, 2, 3, 4, 5]}
    # Counted, not timed: two items ran at once, never more (unbounded would reach 6, serial 1).
    assert SleepNode.peak == 2
    assert {k for k in steps if k.startswith("loop[")} == {f"loop[{i}]" for i in range(6)}


async def test_completed_steps_are_not_rerun(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {"nodes": [sleep("a", 0, 1), sleep("b", 0, "{{ a }}")]}
    done = StepState("a", "a", status=StepStatus.COMPLETED, attempt=1, output=7)
    outcome, _, _ = await run(runner, registry, workflow, steps={"a": done})
    assert outcome.result == {"b": 7}
    assert SleepNode.runs["a"] == 0 and SleepNode.runs["b"] == 1


async def test_interrupt_requeues_running_steps(runner: Runner, registry: NodeRegistry) -> None:
    control = RunControl()
    workflow = {"nodes": [sleep("quick", 0, 1), sleep("slow", 5000, dependsOn=["quick"])]}
    task = asyncio.create_task(run(runner, registry, workflow, control=control))
    await wait_until(lambda: SleepNode.active == 1 and SleepNode.runs["slow"] == 1, "slow running")
    control.request(StopKind.INTERRUPT, "promoted")
    outcome, _, steps = await task
    assert outcome.kind == OutcomeKind.INTERRUPTED
    assert steps["quick"].status == StepStatus.COMPLETED
    assert steps["slow"].status == StepStatus.RUNNING  # re-run later, same attempt
    assert outcome.interrupted_steps == ["slow"]


async def test_pause_lets_running_steps_finish(runner: Runner, registry: NodeRegistry) -> None:
    control = RunControl()
    workflow = {"nodes": [sleep("first", 150, 1), sleep("second", 0, dependsOn=["first"])]}
    task = asyncio.create_task(run(runner, registry, workflow, control=control))
    await wait_until(lambda: SleepNode.active == 1, "first running")
    control.request(StopKind.PAUSE)
    outcome, _, steps = await task
    assert outcome.kind == OutcomeKind.PAUSED
    assert steps["first"].status == StepStatus.COMPLETED
    assert steps["second"].status == StepStatus.PENDING


async def test_cancel_stops_quickly(runner: Runner, registry: NodeRegistry) -> None:
    control = RunControl()
    task = asyncio.create_task(
        run(runner, registry, {"nodes": [sleep("s", 10_000)]}, control=control)
    )
    await wait_until(lambda: SleepNode.active == 1, "s running")
    started = time.perf_counter()
    control.request(StopKind.CANCEL, "user asked")
    outcome, _, steps = await task
    assert time.perf_counter() - started < 0.5
    assert outcome.kind == OutcomeKind.CANCELLED
    assert steps["s"].status == StepStatus.CANCELLED


async def test_expression_error_fails_step_clearly(runner: Runner, registry: NodeRegistry) -> None:
    workflow = {"nodes": [{"id": "t", "type": "transform", "params": {"v": "{{ input.missing }}"}}]}
    outcome, _, steps = await run(runner, registry, workflow, {"x": 1})
    assert outcome.kind == OutcomeKind.FAILED
    error = steps["t"].error
    assert error is not None and error["code"] == "expression_error"
    assert "missing" in error["message"]
