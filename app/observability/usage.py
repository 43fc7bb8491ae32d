"""What a step cost: wall time, CPU time, bytes over the network, output size.

Steps interleave on one event loop, so process CPU time says nothing about one step. CPU is
measured honestly instead: the step's coroutine is driven by `measured()`, which reads the
thread's CPU clock around each synchronous slice (each `send()`/`throw()` of the
coroutine), so only the time the step itself ran on the CPU is counted."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Coroutine, Generator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class StepUsage:
    wall_s: float = 0.0
    cpu_s: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    output_bytes: int = 0

    @classmethod
    def carried(cls, previous: Any, attempt: int) -> StepUsage:
        """A new record, or the one of the same attempt that parked or was interrupted
        before (a resumed attempt costs what all its slices cost)."""
        if not isinstance(previous, dict) or previous.get("attempt") != attempt:
            return cls()
        return cls(
            wall_s=float(previous.get("wallMs", 0)) / 1000,
            cpu_s=float(previous.get("cpuMs", 0)) / 1000,
            bytes_sent=int(previous.get("bytesSent", 0)),
            bytes_received=int(previous.get("bytesReceived", 0)),
        )

    def as_dict(self, attempt: int) -> dict[str, Any]:
        return {
            "attempt": attempt,
            "wallMs": round(self.wall_s * 1000, 3),
            "cpuMs": round(self.cpu_s * 1000, 3),
            "bytesSent": self.bytes_sent,
            "bytesReceived": self.bytes_received,
            "outputBytes": self.output_bytes,
        }


_current: ContextVar[StepUsage | None] = ContextVar("turnout_step_usage", default=None)


def current() -> StepUsage | None:
    return _current.get()


def add_bytes(sent: int = 0, received: int = 0) -> None:
    """Called by nodes that talk to the network (`http.request`)."""
    usage = _current.get()
    if usage is not None:
        usage.bytes_sent += sent
        usage.bytes_received += received


def output_size(output: Any) -> int:
    try:
        return len(json.dumps(output, separators=(",", ":"), default=str).encode())
    except (TypeError, ValueError):
        return 0


def recorded_output_size(state: Mapping[str, Any], attempt: int) -> int | None:
    """The `output_size` a step's usage recorded when that attempt completed (its output
    was just measured: no need to write it out again), or None if it holds none."""
    usage = state.get("usage")
    if not isinstance(usage, dict) or usage.get("attempt") != attempt:
        return None
    size = usage.get("outputBytes")
    # 0: the output could not be measured, so whoever asks measures it (and fails) itself.
    return size if type(size) is int and size > 0 else None


class _Measured:
    """Awaits a coroutine, adding the thread CPU time of each of its slices to `usage`."""

    __slots__ = ("coro", "usage")

    def __init__(self, coro: Coroutine[Any, Any, Any], usage: StepUsage) -> None:
        self.coro = coro
        self.usage = usage

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, usage = self.coro, self.usage
        value: Any = None
        error: BaseException | None = None
        while True:
            start = time.thread_time()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                usage.cpu_s += time.thread_time() - start
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancellation and the like go into the step
                value, error = None, exc


async def measured(awaitable: Awaitable[T], usage: StepUsage) -> T:
    """Run `awaitable` with `usage` as the current step's usage, measuring its CPU and wall."""
    token = _current.set(usage)
    started = time.perf_counter()
    try:
        if isinstance(awaitable, Coroutine):
            result: T = await _Measured(awaitable, usage)
        else:
            result = await awaitable
        return result
    finally:
        usage.wall_s += time.perf_counter() - started
        _current.reset(token)


def totals(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-execution totals from the steps' usage records."""
    keys = ("wallMs", "cpuMs", "bytesSent", "bytesReceived", "outputBytes")
    out: dict[str, Any] = {k: 0 for k in keys}
    for usage in usages:
        for key in keys:
            value = usage.get(key)
            if isinstance(value, int | float):
                out[key] += value
    out["wallMs"] = round(out["wallMs"], 3)
    out["cpuMs"] = round(out["cpuMs"], 3)
    return out


def settled_columns(steps: list[Any]) -> dict[str, Any]:
    """The execution's columns summing its steps (retries and usage), written at rest."""
    total = totals([s.state.get("usage") or {} for s in steps])
    return {
        "step_retries": sum(max(0, s.attempt - 1) for s in steps),
        "cpu_ms": total["cpuMs"],
        "bytes_sent": total["bytesSent"],
        "bytes_received": total["bytesReceived"],
    }
