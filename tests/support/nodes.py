"""Node types used by tests: real plugins of the node API, with counters to observe runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from app.engine.state import StepState
from app.errors import StepError
from app.nodes.base import BaseNode, NodeContext, Params


class SleepParams(Params):
    ms: int = 0
    value: Any = None


class SleepNode(BaseNode):
    """Sleeps `ms`, then returns `value`; counts its runs, and how many ran at once (`peak`)."""

    name: ClassVar[str] = "test.sleep"
    params_model: ClassVar[type[BaseModel]] = SleepParams
    runs: ClassVar[Counter[str]] = Counter()
    active: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        return float(params.get("ms", 0))

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        self.runs[ctx.step_key] += 1
        SleepNode.active += 1
        SleepNode.peak = max(SleepNode.peak, SleepNode.active)
        try:
            await asyncio.sleep(params.ms / 1000)
        finally:
            SleepNode.active -= 1
        return params.value


class FlakyParams(Params):
    failures: int = 1
    value: Any = "ok"
    retryable: bool = True


class FlakyNode(BaseNode):
    """Fails its first `failures` attempts (per step key), then returns `value`."""

    name: ClassVar[str] = "test.flaky"
    params_model: ClassVar[type[BaseModel]] = FlakyParams
    attempts: ClassVar[Counter[str]] = Counter()

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        self.attempts[ctx.step_key] += 1
        if self.attempts[ctx.step_key] <= params.failures:
            err = StepError(f"flaky failure {self.attempts[ctx.step_key]}")
            err.retryable = params.retryable
            raise err
        return params.value


def reset_counters() -> None:
    SleepNode.runs.clear()
    SleepNode.active = SleepNode.peak = 0
    FlakyNode.attempts.clear()


class MemoryObserver:
    """Collects what the runner reports, as the recorder would persist it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.durable_flushes = 0

    async def step_changed(
        self, step: StepState, event: str | None, data: dict[str, Any], *, durable: bool
    ) -> None:
        if event is not None:
            self.events.append((event, {"stepKey": step.key, **data}))
        if durable:
            self.durable_flushes += 1

    def step_revised(self, step: StepState) -> None:
        pass

    def types(self, key: str) -> list[str]:
        return [t for t, d in self.events if d["stepKey"] == key]


class BadStateNode(BaseNode):
    """Keeps a set in its step state (which nodes own): a write the database must refuse."""

    name: ClassVar[str] = "test.bad_state"
    params_model: ClassVar[type[BaseModel]] = Params

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        ctx.state["kept"] = {1, 2}
        return "ok"
