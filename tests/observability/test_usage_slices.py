"""A resumed attempt (parked, then woken) is charged for all its slices; a new attempt
starts from nothing; CPU is charged to the step whose code ran, not to the ones beside it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from app.engine.state import StepState
from app.observability.steps import observe_step
from app.observability.usage import measured


async def spin(ms: float) -> None:
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass
    await asyncio.sleep(0)


async def attempt(step: StepState, state: dict[str, Any], ms: float) -> float:
    with observe_step("exec", "test.spin", step, state) as usage:
        await measured(spin(ms), usage)
    return float(state["usage"]["cpuMs"])


async def test_a_resumed_attempt_adds_up_and_a_new_attempt_starts_again() -> None:
    step = StepState("a", "a", attempt=1)
    state: dict[str, Any] = {}
    first = await attempt(step, state, 30)
    assert first >= 30
    resumed = await attempt(step, state, 30)  # the same attempt, woken again
    assert resumed >= first + 30
    step = step.evolve(attempt=2)
    retried = await attempt(step, state, 30)
    assert 30 <= retried < resumed
    assert state["usage"]["attempt"] == 2


async def test_cpu_is_charged_to_the_step_that_ran_not_to_its_neighbour() -> None:
    busy, idle = StepState("busy", "busy", attempt=1), StepState("idle", "idle", attempt=1)
    busy_state: dict[str, Any] = {}
    idle_state: dict[str, Any] = {}

    async def sleeper() -> None:
        await asyncio.sleep(0.2)

    async def run(step: StepState, state: dict[str, Any], work: Coroutine[Any, Any, None]) -> None:
        with observe_step("exec", "t", step, state) as usage:
            await measured(work, usage)

    await asyncio.gather(run(busy, busy_state, spin(150)), run(idle, idle_state, sleeper()))
    assert busy_state["usage"]["cpuMs"] >= 150
    assert idle_state["usage"]["cpuMs"] < 10
