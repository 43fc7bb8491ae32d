"""maxOutputBytes counts what each step's usage measured: an output is written out once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.engine.runner import Runner
from app.engine.state import OutcomeKind, RunOutcome
from app.nodes.base import Services
from app.nodes.builtin import builtin_types
from app.nodes.registry import NodeRegistry
from app.observability.usage import output_size, recorded_output_size
from app.workflows.graph import compile_workflow
from tests.support.nodes import MemoryObserver

REGISTRY = NodeRegistry(builtin_types())


def three(limit: int | None = None) -> dict[str, Any]:
    nodes = [
        {"id": "a", "type": "transform", "params": {"s": "é" * 5, "n": "{{ input.n }}"}},
        {"id": "b", "type": "transform", "params": {"t": "{{ a.s }}", "f": 1.5}},
        {"id": "c", "type": "transform", "params": {"l": ["{{ b.t }}", None, True]}},
    ]
    return {"nodes": nodes, **({"limits": {"maxOutputBytes": limit}} if limit else {})}


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    async with httpx.AsyncClient() as client:
        yield Runner(Services(Settings(), client), REGISTRY)


async def run(runner: Runner, workflow: dict[str, Any]) -> RunOutcome:
    compiled = compile_workflow(workflow, REGISTRY, max_nodes=10)
    return await runner.run(compiled, {"n": 7}, execution_id="e", observer=MemoryObserver())


async def test_the_limit_is_the_sum_of_the_measured_outputs(runner: Runner) -> None:
    done = await run(runner, three())
    assert done.kind == OutcomeKind.COMPLETED
    sizes = [s.state["usage"]["outputBytes"] for s in done.steps.values()]
    assert sizes == [output_size(s.output) for s in done.steps.values()]
    assert (await run(runner, three(sum(sizes)))).kind == OutcomeKind.COMPLETED
    over = await run(runner, three(sum(sizes) - 1))
    assert over.kind == OutcomeKind.FAILED and over.error is not None
    assert over.error["limit"] == "maxOutputBytes"
    assert f"(used {sum(sizes)})" in over.error["message"]


async def test_each_output_is_written_out_once(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []
    real = json.dumps

    def dumps(value: Any, *args: Any, **kwargs: Any) -> str:
        written.append(id(value))
        return real(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", dumps)
    done = await run(runner, three(10_000))
    monkeypatch.undo()
    assert done.kind == OutcomeKind.COMPLETED
    for step in done.steps.values():
        assert written.count(id(step.output)) == 1, step.node_id


def test_a_recorded_size_is_only_the_one_of_that_attempt() -> None:
    usage = {"attempt": 2, "outputBytes": 12}
    assert recorded_output_size({"usage": usage}, 2) == 12
    assert recorded_output_size({"usage": usage}, 1) is None
    assert recorded_output_size({}, 2) is None
    # 0 is what output_size answers for what it cannot write: the budget measures it itself.
    assert recorded_output_size({"usage": {**usage, "outputBytes": 0}}, 2) is None
    assert recorded_output_size({"usage": {**usage, "outputBytes": 1.0}}, 2) is None
