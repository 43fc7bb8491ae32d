"""Plain records read from the store (no SQLAlchemy types leak past the repository)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from app.engine.state import StepState
from app.observability.tracing import current_traceparent


@dataclass(slots=True)
class ExecutionRecord:
    id: UUID
    workflow_id: str | None
    workflow_name: str
    workflow_version: str | None
    status: str
    execution_mode: str
    requested_mode: str
    priority: int
    tags: list[str]
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    input: Any
    result: Any
    error: dict[str, Any] | None
    complexity: dict[str, Any] | None
    metadata: dict[str, Any]
    definition: dict[str, Any]
    timeout_ms: int | None
    elapsed_ms: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    control_action: str | None
    wake_at: datetime | None
    last_seq: int
    progress_done: int
    progress_total: int
    idempotency_key: str | None
    request_hash: str | None
    steps: list[StepState] = field(default_factory=list)
    recoveries: int = 0
    trace_context: str | None = None
    namespace: str = "default"
    schedule_id: UUID | None = None
    schedule_slot: datetime | None = None
    parent: ParentLink | None = None

    flow: dict[str, Any] | None = None  # the flow-control gate's spec (app/store/flow.py)
    pending_reason: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The step of another execution that started this one as its child."""

    execution_id: UUID
    step_key: str
    attempt: int
    depth: int  # 1 for a child of a top-level run

    def to_dict(self) -> dict[str, Any]:
        return {"executionId": str(self.execution_id), "stepId": self.step_key}


@dataclass(slots=True)
class EventRecord:
    execution_id: UUID
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


def numbered_events(
    execution_id: UUID,
    last_seq: int,
    events: Sequence[tuple[str, dict[str, Any]]],
    now: datetime,
    times: Sequence[datetime] = (),
) -> list[EventRecord]:
    """The events one write stored, numbered as the write allocated them: the execution's
    `last_seq` after it is the last one's seq (so they are last_seq - n + 1 ... last_seq).
    Each is stamped with its time from `times` when given, else `now`."""
    first = last_seq - len(events)
    return [
        EventRecord(execution_id, first + i, kind, data, times[i - 1] if i <= len(times) else now)
        for i, (kind, data) in enumerate(events, start=1)
    ]


# An execution's priority runs from 0 to this (higher runs first; the API bounds it, the
# queues order by it).
MAX_PRIORITY = 100


@dataclass(slots=True)
class NewExecution:
    """What the manager decides before the first insert."""

    id: UUID
    workflow_name: str
    workflow_id: str | None
    workflow_version: str | None
    status: str
    execution_mode: str
    requested_mode: str
    input: Any
    definition: dict[str, Any]
    complexity: dict[str, Any] | None
    priority: int = 0
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    request_hash: str | None = None
    timeout_ms: int | None = None
    progress_total: int = 0
    lease_owner: str | None = None
    lease_ms: int | None = None
    # The trace the run belongs to: the current span's, where the execution is created.
    trace_context: str | None = field(default_factory=current_traceparent)
    namespace: str = "default"
    # The schedule fire that starts it (unique together: a second fire of a slot is refused).
    schedule_id: UUID | None = None
    schedule_slot: datetime | None = None
    parent: ParentLink | None = None
    flow: dict[str, Any] | None = None


@dataclass(slots=True)
class ExecutionFilter:
    status: list[str] | None = None
    workflow: str | None = None
    mode: str | None = None
    tag: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str | None = None  # a prefix of the id, or part of the idempotency key
    namespace: str | None = None


@dataclass(slots=True)
class Checkpoint:
    """One transaction of a runner: steps, events, and optionally a status change."""

    steps: list[StepState] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # When each event happened (a batch is written later); missing ones take the commit time.
    event_times: list[datetime] = field(default_factory=list)
    status: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    release_lease: bool = False


@dataclass(slots=True)
class WorkflowRecord:
    id: UUID
    name: str
    version: str
    definition: dict[str, Any]
    created_at: datetime
