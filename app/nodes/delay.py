"""`delay`: waits `ms`; in a queued run a long wait parks the step instead of a worker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.nodes.base import BaseNode, NodeContext, Params, Suspend
from app.nodes.template import MAX_DURATION_MS

MAX_DELAY_MS = MAX_DURATION_MS


class DelayParams(Params):
    ms: int = Field(ge=0, le=MAX_DELAY_MS)


def due_time(state: dict[str, Any], ms: int, now: datetime) -> datetime:
    """The due time fixed on the first run, so a resumed or re-run step waits only the rest."""
    stored = state.get("dueAt")
    if isinstance(stored, str):
        try:
            due = datetime.fromisoformat(stored)
        except ValueError:
            pass  # a corrupt value must not wedge the step: start the wait again
        else:
            return due if due.tzinfo else due.replace(tzinfo=UTC)
    due = now + timedelta(milliseconds=ms)
    state["dueAt"] = due.isoformat()
    return due


class DelayNode(BaseNode):
    """Durable when queued: at least `durable_delay_threshold_ms` left raises `Suspend`."""

    name: ClassVar[str] = "delay"
    params_model: ClassVar[type[BaseModel]] = DelayParams

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        ms = params.get("ms")
        # A templated `ms` is unknown before the run; count it as instant.
        return float(ms) if isinstance(ms, int | float) and not isinstance(ms, bool) else 0.0

    async def run(self, ctx: NodeContext, params: DelayParams) -> Any:
        now = datetime.now(UTC)
        due = due_time(ctx.state, params.ms, now)
        remaining_ms = (due - now).total_seconds() * 1000
        if remaining_ms > 0:
            threshold = ctx.services.settings.durable_delay_threshold_ms
            if ctx.services.queued and remaining_ms >= threshold:
                raise Suspend("delay", until=due, data={"dueAt": due.isoformat()})
            await asyncio.sleep(remaining_ms / 1000)
        return {"delayedMs": params.ms}
