"""Plain data the runner reads and writes: step states (frozen values), the one book that
holds a run's current ones, and the run's outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from app.engine.status import StepStatus

_NEVER = datetime.max.replace(tzinfo=UTC)


def step_order(step: StepState) -> tuple[datetime, str]:
    """How an execution's steps are listed: by start (not started last), then key. The store
    reads them in this order too (`nulls_last`, then `step_key`)."""
    return (step.started_at or _NEVER, step.key)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StepState:
    """One step row: a node, or one item of a foreach (`key` is `node[3]`).

    A value: a change is a new one (`evolve`), so whoever holds one (the recorder's batch,
    a settled record) keeps what it was given. `state` is never written in place either."""

    key: str
    node_id: str
    item_index: int | None = None
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    state: Mapping[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> StepState:
        return dataclasses.replace(self, **changes)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds() * 1000, 3)


class RunObserver(Protocol):
    """Persistence and events hook into the runner here; `durable` asks for a flush now."""

    async def step_changed(
        self, step: StepState, event: str | None, data: dict[str, Any], *, durable: bool
    ) -> None: ...

    def step_revised(self, step: StepState) -> None:
        """A change not reported on its own: kept if the step's last change is still
        unwritten, else left for the step's next change."""


class StepBook:
    """The current steps of one run, and the one place they change: each change stores a
    new value (the runner's walk and the step executor both go through here)."""

    __slots__ = ("_steps", "observer")

    def __init__(self, steps: Mapping[str, StepState], observer: RunObserver) -> None:
        self._steps = dict(steps)
        self.observer = observer

    def get(self, key: str) -> StepState | None:
        return self._steps.get(key)

    def __getitem__(self, key: str) -> StepState:
        return self._steps[key]

    def __iter__(self) -> Iterator[StepState]:
        return iter(list(self._steps.values()))

    def snapshot(self) -> dict[str, StepState]:
        return dict(self._steps)

    def add(self, step: StepState) -> StepState:
        """A step the run has not touched yet (nothing to report)."""
        self._steps[step.key] = step
        return step

    async def change(
        self, step: StepState, event: str | None, data: dict[str, Any], *, durable: bool
    ) -> StepState:
        self._steps[step.key] = step
        await self.observer.step_changed(step, event, data, durable=durable)
        return step

    def revise(self, step: StepState) -> StepState:
        self._steps[step.key] = step
        self.observer.step_revised(step)
        return step


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
    # Every step as the run left it (the walk's book at the end).
    steps: dict[str, StepState] = field(default_factory=dict)
