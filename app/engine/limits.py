"""Per-run limits (maxSteps, maxOutputBytes, maxDurationMs): a budget the walk spends (pure)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    max_steps: int = 0  # 0: no limit
    max_output_bytes: int = 0
    max_duration_ms: int = 0


class RunBudget:
    """Counts what a run used; `exceeded` names the first limit it went past."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.output_bytes = 0
        self.started = time.monotonic()
        self.exceeded: dict[str, Any] | None = None

    def spend(self, steps: int = 0, output: Any = None, size: int | None = None) -> bool:
        """Add a step's cost; False (and `exceeded` set) once a limit is passed. `size`: the
        output's size already measured as `output_size` measures it (the same JSON text)."""
        self.steps += steps
        if output is not None:
            if size is None:
                size = len(json.dumps(output, separators=(",", ":"), default=str))
            self.output_bytes += size
        if self.limits.max_steps and self.steps > self.limits.max_steps:
            return self._over("maxSteps", self.limits.max_steps, self.steps)
        if self.limits.max_output_bytes and self.output_bytes > self.limits.max_output_bytes:
            return self._over("maxOutputBytes", self.limits.max_output_bytes, self.output_bytes)
        return self.exceeded is None

    def seconds_left(self) -> float | None:
        if not self.limits.max_duration_ms:
            return None
        return self.limits.max_duration_ms / 1000 - (time.monotonic() - self.started)

    def out_of_time(self) -> bool:
        left = self.seconds_left()
        if left is not None and left <= 0:
            return not self._over("maxDurationMs", self.limits.max_duration_ms, None)
        return False

    def _over(self, name: str, limit: int, used: int | None) -> bool:
        if self.exceeded is None:
            spent = f" (used {used})" if used is not None else ""
            self.exceeded = {
                "code": "limit_exceeded",
                "message": f"the run exceeded its limit {name} = {limit}{spent}",
                "limit": name,
                "value": limit,
            }
        return False


def step_cost(node_type: str, output: Any) -> int:
    """A foreach counts each of its items as a step."""
    if node_type == "foreach" and isinstance(output, list):
        return max(1, len(output))
    return 1
