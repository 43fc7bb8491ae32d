"""Around each step attempt: a span, the log context, the resource usage and the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.engine.state import StepState
from app.logs import log_context
from app.metrics import STEP_CPU_SECONDS, STEP_SECONDS, Children
from app.nodes.base import Suspend
from app.observability import tracing
from app.observability.usage import StepUsage

_STEP_SECONDS = Children(STEP_SECONDS)  # (node_type, status)
_STEP_CPU_SECONDS = Children(STEP_CPU_SECONDS)  # (node_type,)


@contextmanager
def observe_step(
    execution_id: str, node_type: str, step: StepState, state: dict[str, Any]
) -> Iterator[StepUsage]:
    """Yields the attempt's usage (fill it with `usage.measured`, and `output_bytes`); on
    exit records it in `state`, the attempt's state that becomes the step's (`usage`, shown
    by the API), ends the span and observes the histogram."""
    usage = StepUsage.carried(state.get("usage"), step.attempt)
    wall_before, cpu_before = usage.wall_s, usage.cpu_s
    status, error = "completed", None
    with (
        log_context(execution_id=execution_id, node_id=step.node_id, attempt=step.attempt),
        tracing.step_span(
            execution_id=execution_id,
            node_id=step.node_id,
            step_key=step.key,
            node_type=node_type,
            attempt=step.attempt,
        ) as span,
    ):
        try:
            yield usage
        except Suspend:
            status = "waiting"
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:
            from app.engine.steps import StepInterrupted, error_dict

            status = "interrupted" if isinstance(exc, StepInterrupted) else "failed"
            error = None if status == "interrupted" else error_dict(exc, step.node_id)
            raise
        finally:
            state["usage"] = usage.as_dict(step.attempt)
            tracing.end_step(span, status, error)
            # The metrics count this slice only (an earlier one was counted when it ended).
            wall = usage.wall_s - wall_before
            _STEP_SECONDS(node_type, status).observe(wall)
            _STEP_CPU_SECONDS(node_type).inc(usage.cpu_s - cpu_before)
