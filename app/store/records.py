"""Plain records read from the store (no SQLAlchemy types leak past the repository)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from app.engine.state import StepState


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
    namespace: str = "default"


@dataclass(slots=True)
class EventRecord:
    execution_id: UUID
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime


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
    namespace: str = "default"


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
