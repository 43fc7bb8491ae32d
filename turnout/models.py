"""Typed views of what the API returns: executions, steps, events, workflows, problems.

Every model keeps the server's JSON in `raw`, so nothing the API adds later is lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TERMINAL_EVENTS = frozenset({f"execution.{s}" for s in TERMINAL_STATUSES})


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, a workflow or its input, and where."""

    message: str
    code: str = "invalid"
    field: str = ""
    loc: tuple[str | int, ...] = ()
    node_id: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Problem:
        if not isinstance(data, dict):
            return cls(message=str(data))
        loc = data.get("loc") or ()
        return cls(
            message=str(data.get("message") or data.get("msg") or ""),
            code=str(data.get("code") or data.get("type") or "invalid"),
            field=str(data.get("field") or ""),
            loc=tuple(loc) if isinstance(loc, list | tuple) else (),
            node_id=data.get("nodeId"),
        )

    def __str__(self) -> str:
        where = self.field or ".".join(str(p) for p in self.loc)
        node = f" (node {self.node_id})" if self.node_id else ""
        return f"{where}{node}: {self.message}" if where else self.message


@dataclass(frozen=True)
class ErrorInfo:
    """Why an execution or a step failed: `{code, message, nodeId?}`."""

    code: str
    message: str
    node_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> ErrorInfo | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            return cls(code="error", message=str(data))
        return cls(
            code=str(data.get("code", "error")),
            message=str(data.get("message", "")),
            node_id=data.get("nodeId"),
            raw=data,
        )


@dataclass(frozen=True)
class Progress:
    done: int = 0
    total: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> Progress:
        if not isinstance(data, dict):
            return cls()
        return cls(done=int(data.get("done") or 0), total=int(data.get("total") or 0))


@dataclass(frozen=True)
class Step:
    """One node's (or one foreach item's) state in an execution."""

    node_id: str
    status: str
    attempt: int
    step_key: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: float | None = None
    output: Any = None
    error: ErrorInfo | None = None
    item_index: int | None = None
    skip_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            node_id=str(data.get("nodeId", "")),
            status=str(data.get("status", "")),
            attempt=int(data.get("attempt") or 0),
            step_key=data.get("stepKey"),
            started_at=_time(data.get("startedAt")),
            completed_at=_time(data.get("completedAt")),
            duration_ms=_float(data.get("durationMs")),
            output=data.get("output"),
            error=ErrorInfo.from_dict(data.get("error")),
            item_index=data.get("itemIndex"),
            skip_reason=data.get("skipReason"),
            raw=data,
        )


@dataclass(frozen=True)
class Execution:
    """An execution as the API shows it. A queued run's first answer (`202`) holds only
    the id, status, mode and complexity; `Client.get` returns everything."""

    id: str
    status: str
    mode: str | None = None
    workflow_name: str | None = None
    workflow_id: str | None = None
    workflow_version: str | None = None
    requested_mode: str | None = None
    priority: int = 0
    tags: tuple[str, ...] = ()
    attempt: int = 1
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: float | None = None
    input: Any = None
    result: Any = None
    error: ErrorInfo | None = None
    complexity: dict[str, Any] | None = None
    progress: Progress = field(default_factory=Progress)
    steps: tuple[Step, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    queue_position: int | None = None
    # Why a pending run has not started (flow control): {"code": "concurrency_limit", ...}.
    pending_reason: dict[str, Any] | None = None
    changed: bool | None = None  # control verbs: False when the request was already satisfied
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Execution:
        return cls(
            id=str(data.get("executionId") or data.get("id") or ""),
            status=str(data.get("status", "")),
            mode=data.get("mode"),
            workflow_name=data.get("workflowName"),
            workflow_id=data.get("workflowId"),
            workflow_version=data.get("workflowVersion"),
            requested_mode=data.get("requestedMode"),
            priority=int(data.get("priority") or 0),
            tags=tuple(data.get("tags") or ()),
            attempt=int(data.get("attempt") or 1),
            created_at=_time(data.get("createdAt")),
            started_at=_time(data.get("startedAt")),
            completed_at=_time(data.get("completedAt")),
            duration_ms=_float(data.get("durationMs")),
            input=data.get("input"),
            result=data.get("result"),
            error=ErrorInfo.from_dict(data.get("error")),
            complexity=data.get("complexity"),
            progress=Progress.from_dict(data.get("progress")),
            steps=tuple(Step.from_dict(s) for s in data.get("steps") or () if isinstance(s, dict)),
            metadata=data.get("metadata") or {},
            queue_position=data.get("queuePosition"),
            pending_reason=data.get("pendingReason"),
            changed=data.get("changed"),
            raw=data,
        )


@dataclass(frozen=True)
class Event:
    """One event of an execution's stream. `queue` frames (the queue position while the
    execution waits) are not stored events: their `seq` is None."""

    type: str
    seq: int | None
    execution_id: str | None = None
    at: datetime | None = None
    node_id: str | None = None
    step_key: str | None = None
    attempt: int | None = None
    progress: Progress | None = None
    queue_position: int | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    @classmethod
    def from_frame(cls, event: str, data: Any, frame_id: str | None) -> Event:
        body: dict[str, Any] = data if isinstance(data, dict) else {"value": data}
        seq = body.get("seq")
        if seq is None and frame_id and frame_id.isdigit():
            seq = int(frame_id)
        progress = body.get("progress")
        return cls(
            type=str(body.get("type") or event),
            seq=int(seq) if seq is not None else None,
            execution_id=body.get("executionId"),
            at=_time(body.get("at")),
            node_id=body.get("nodeId"),
            step_key=body.get("stepKey"),
            attempt=body.get("attempt"),
            progress=Progress.from_dict(progress) if progress is not None else None,
            queue_position=body.get("queuePosition"),
            data=body,
        )


@dataclass(frozen=True)
class Workflow:
    """A registered workflow version (its `definition` is absent from some listings)."""

    name: str
    version: str | None
    definition: dict[str, Any] | None = None
    created_at: datetime | None = None
    versions: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workflow:
        version = data.get("version", data.get("latestVersion"))
        versions = data.get("versions") or ()
        return cls(
            name=str(data.get("name", "")),
            version=str(version) if version is not None else None,
            definition=data.get("definition"),
            created_at=_time(data.get("createdAt")),
            versions=tuple(
                str(v.get("version")) if isinstance(v, dict) else str(v) for v in versions
            ),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class SentEvent:
    """An event as `POST /events` stored it (the first one, for a repeated id), and the runs
    its triggers started (`(workflow, executionId)` pairs)."""

    id: str
    name: str
    data: Any = None
    received_at: datetime | None = None
    runs: tuple[tuple[str, str], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentEvent:
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            data=data.get("data"),
            received_at=_time(data.get("receivedAt")),
            runs=tuple(
                (str(r.get("workflow")), str(r.get("executionId")))
                for r in data.get("runs") or ()
                if isinstance(r, dict)
            ),
            raw=data,
        )


@dataclass(frozen=True)
class Circuit:
    """One circuit breaker of `http.request` (`GET /circuits`): a target `host:port`."""

    host: str
    name: str
    state: str  # "closed", "half_open" or "open"
    failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    opens: int = 0
    settings: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Circuit:
        return cls(
            host=str(data.get("host", "")),
            name=str(data.get("name", data.get("host", ""))),
            state=str(data.get("state", "")),
            failures=int(data.get("failures") or 0),
            opened_at=_time(data.get("openedAt")),
            next_probe_at=_time(data.get("nextProbeAt")),
            opens=int(data.get("opens") or 0),
            settings=dict(data.get("settings") or {}),
            raw=data,
        )
