"""What the composing node types (`workflow`, `wait.event`) ask of the execution layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.nodes.base import NodeContext, step_error

# An event matcher: the event's view in, matched or not out (raises ExpressionError).
Matcher = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class ChildView:
    """A child execution as its parent step sees it."""

    id: str
    status: str
    workflow: str
    version: str | None
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventCheck:
    """What a look at the events found: the first match (if any), and how many were seen."""

    match: dict[str, Any] | None
    seen: int  # events of the name received since `start`
    start: datetime


class Composition(Protocol):
    """Starts and reads child executions; finds events for waiting steps."""

    async def start_child(
        self, ctx: NodeContext, workflow: str, version: str | None, input_data: Any
    ) -> ChildView: ...

    async def child(self, child_id: str) -> ChildView: ...

    async def check_events(
        self, ctx: NodeContext, name: str, since: datetime, matcher: Matcher
    ) -> EventCheck: ...

    async def stop_waiting(self, ctx: NodeContext) -> None: ...


def composition(ctx: NodeContext, node_type: str) -> Composition:
    """The process's composition service; a clear step failure where there is none."""
    found = ctx.services.composition
    if found is None:
        raise step_error(
            f"'{node_type}' cannot run here: this runner has no composition service",
            code="composition_unavailable",
            retryable=False,
        )
    return found
