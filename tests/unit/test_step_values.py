"""Step state passes between the walk, the step executor and the observer as values: what
an observer was handed stays what it was, and the steps given to a run are left as given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.engine.runner import Runner
from app.engine.state import OutcomeKind, StepState
from app.engine.status import StepStatus
from app.nodes.base import Services
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.workflows.graph import compile_workflow
from tests.support.nodes import FlakyNode, SleepNode, reset_counters


class KeepingObserver:
    """Keeps every step it is handed, as a recorder's unwritten batch does."""

    def __init__(self) -> None:
        self.kept: list[tuple[str | None, StepState]] = []
        self.revised: list[StepState] = []

    async def step_changed(
        self, step: StepState, event: str | None, data: dict[str, Any], *, durable: bool
    ) -> None:
        self.kept.append((event, step))

    def step_revised(self, step: StepState) -> None:
        self.revised.append(step)


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    reset_counters()
    registry = NodeRegistry([*builtin_types(), SleepNode(), FlakyNode()])
    async with httpx.AsyncClient() as client:
        yield Runner(Services(Settings(), client), registry, rand=lambda: 0.0)


def flaky_workflow(runner: Runner) -> Any:
    node = {
        "id": "f",
        "type": "test.flaky",
        "params": {"failures": 1, "value": 42},
        "retry": {"maxAttempts": 2, "initialDelay": 1, "jitter": False},
    }
    return compile_workflow({"nodes": [node]}, runner.registry, max_nodes=10)


async def test_what_the_observer_was_handed_stays_as_it_was(runner: Runner) -> None:
    observer = KeepingObserver()
    outcome = await runner.run(flaky_workflow(runner), {}, execution_id="exec-1", observer=observer)
    assert outcome.kind == OutcomeKind.COMPLETED
    seen = [(event, s.status, s.attempt, s.output) for event, s in observer.kept]
    assert seen == [
        ("step.started", StepStatus.RUNNING, 1, None),
        ("step.retrying", StepStatus.RUNNING, 1, None),
        ("step.started", StepStatus.RUNNING, 2, None),
        ("step.completed", StepStatus.COMPLETED, 2, 42),
    ]
    retrying = observer.kept[1][1]
    assert retrying.error is not None and retrying.state["usage"]["attempt"] == 1


async def test_the_steps_given_to_a_run_are_left_as_given(runner: Runner) -> None:
    given = {"f": StepState("f", "f")}
    outcome = await runner.run(
        flaky_workflow(runner), {}, execution_id="exec-1", observer=KeepingObserver(), steps=given
    )
    assert given["f"] == StepState("f", "f")
    assert given["f"].status == StepStatus.PENDING and given["f"].state == {}
    assert outcome.steps["f"].status == StepStatus.COMPLETED
    assert outcome.steps["f"].attempt == 2


async def test_what_a_node_writes_mid_attempt_reaches_the_observer(runner: Runner) -> None:
    """A checkpoint taken while a delay sleeps holds its due time (a re-run waits the rest)."""
    observer = KeepingObserver()
    workflow = {"nodes": [{"id": "d", "type": "delay", "params": {"ms": 20}}]}
    compiled = compile_workflow(workflow, runner.registry, max_nodes=10)
    await runner.run(compiled, {}, execution_id="exec-1", observer=observer)
    mid = [s for s in observer.revised if s.status == StepStatus.RUNNING]
    assert mid and "dueAt" in mid[0].state
    assert "dueAt" in observer.kept[-1][1].state  # and the completed step keeps it
