"""Plain data the runner reads and writes: step states and the run's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.engine.status import StepStatus

_NEVER = datetime.max.replace(tzinfo=UTC)


def step_order(step: StepState) -> tuple[datetime, str]:
    """How an execution's steps are listed: by start (not started last), then key. The store
    reads them in this order too (`nulls_last`, then `step_key`)."""
    return (step.started_at or _NEVER, step.key)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class StepState:
    """One step row: a node, or one item of a foreach (`key` is `node[3]`)."""

    key: str
    node_id: str
    item_index: int | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds() * 1000, 3)


def item_key(node_id: str, index: int) -> str:
    return f"{node_id}[{index}]"


class OutcomeKind(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    WAITING = "waiting"  # parked on human input or a durable delay
    INTERRUPTED = "interrupted"  # promoted to the queue, or the process is shutting down


@dataclass(slots=True)
class RunOutcome:
    kind: OutcomeKind
    result: Any = None
    error: dict[str, Any] | None = None
    wake_at: datetime | None = None
    waiting_for: list[dict[str, Any]] = field(default_factory=list)
    interrupted_steps: list[str] = field(default_factory=list)
