"""What the API answers, as models: they document `/openapi.json` (the answers are built
as plain dicts by `app.api.schemas`, so serving them costs no second validation)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.flow import FlowControl, PendingReason


class Resource(BaseModel):
    # New fields may appear in an answer before they are described here.
    model_config = ConfigDict(extra="allow")


class Progress(Resource):
    done: int
    total: int


class ProblemInfo(Resource):
    """An execution's or a step's `error`: `{code, message, nodeId?}`."""

    code: str
    message: str
    node_id: str | None = Field(default=None, alias="nodeId")


class Complexity(Resource):
    score: float
    node_count: int = Field(alias="nodeCount")
    external_calls: int = Field(alias="externalCalls")
    loops: int
    parallel_paths: int = Field(alias="parallelPaths")
    human_input: bool = Field(alias="humanInput")
    estimated_duration_ms: float = Field(alias="estimatedDurationMs")
    reasons: list[str]
    recommended_mode: str = Field(alias="recommendedMode")


class Usage(Resource):
    """What a step attempt (or, summed, an execution) cost."""

    attempt: int | None = Field(default=None, description="the attempt measured (steps)")
    wall_ms: float = Field(alias="wallMs")
    cpu_ms: float = Field(alias="cpuMs", description="thread CPU time of the step's own code")
    bytes_sent: int = Field(alias="bytesSent")
    bytes_received: int = Field(alias="bytesReceived")
    output_bytes: int = Field(alias="outputBytes")


class Step(Resource):
    node_id: str = Field(alias="nodeId")
    step_key: str = Field(alias="stepKey")
    status: str
    attempt: int
    started_at: str | None = Field(alias="startedAt")
    completed_at: str | None = Field(alias="completedAt")
    duration_ms: float | None = Field(alias="durationMs")
    output: Any = None
    error: ProblemInfo | None = None
    item_index: int | None = Field(default=None, alias="itemIndex")
    skip_reason: str | None = Field(default=None, alias="skipReason")
    usage: Usage | None = None
    child: StepChild | None = Field(default=None, description="a `workflow` step's child run")


class StepChild(Resource):
    execution_id: str = Field(alias="executionId")
    workflow: str | None = None
    version: str | None = None
    attempt: int | None = None


class ParentRef(Resource):
    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")


class ChildRef(Resource):
    execution_id: str = Field(alias="executionId")
    step_id: str = Field(alias="stepId")
    workflow_name: str = Field(alias="workflowName")
    status: str


class ScheduleFire(Resource):
    """The schedule fire that started an execution: its schedule and nominal slot time."""

    id: str
    slot: str


class ExecutionSummary(Resource):
    execution_id: str = Field(alias="executionId")
    workflow_id: str | None = Field(alias="workflowId")
    workflow_name: str = Field(alias="workflowName")
    workflow_version: str | None = Field(alias="workflowVersion")
    status: str
    mode: str
    requested_mode: str = Field(alias="requestedMode")
    priority: int
    tags: list[str]
    attempt: int
    created_at: str = Field(alias="createdAt")
    updated_at: str | None = Field(alias="updatedAt")
    started_at: str | None = Field(alias="startedAt")
    completed_at: str | None = Field(alias="completedAt")
    duration_ms: float | None = Field(alias="durationMs")
    input: Any = None
    result: Any = None
    error: ProblemInfo | None = None
    complexity: Complexity | None = None
    progress: Progress
    metadata: dict[str, Any]
    wake_at: str | None = Field(default=None, alias="wakeAt")
    schedule: ScheduleFire | None = Field(
        default=None, description="set when a schedule started it"
    )
    parent: ParentRef | None = Field(
        default=None, description="the `workflow` step that started this run as its child"
    )
    flow_control: FlowControl | None = Field(default=None, alias="flowControl")
    pending_reason: PendingReason | None = Field(default=None, alias="pendingReason")


class Execution(ExecutionSummary):
    """The execution with its steps (`queuePosition` while pending: 1 = next)."""

    steps: list[Step]
    children: list[ChildRef] = Field(
        default_factory=list,
        description="the runs its `workflow` steps started (absent when none)",
    )
    usage: Usage | None = Field(default=None, description="the steps' usage, summed")
    queue_position: int | None = Field(default=None, alias="queuePosition")


class ControlAnswer(Execution):
    changed: bool = Field(description="false when the request was already satisfied")


class Links(Resource):
    self_: str = Field(alias="self")
    stream: str


class Accepted(Resource):
    """`202`: the execution was queued (or promoted); follow it by id or on its stream."""

    execution_id: str = Field(alias="executionId")
    status: str
    complexity: Complexity | None = None
    mode: str
    links: Links
    flow_control: FlowControl | None = Field(default=None, alias="flowControl")
    pending_reason: PendingReason | None = Field(default=None, alias="pendingReason")


class ExecutionPage(Resource):
    items: list[ExecutionSummary]
    next_cursor: str | None = Field(alias="nextCursor")


class Workflow(Resource):
    id: str
    name: str
    version: str
    created_at: str = Field(alias="createdAt")
    definition: dict[str, Any]


class AutoStarted(Resource):
    """The run an `autoStart` version started (or why it did not)."""

    execution_id: str | None = Field(default=None, alias="executionId")
    created: bool | None = Field(default=None, description="false: it had started already")
    error: ProblemInfo | None = None


class RegisteredWorkflow(Workflow):
    auto_start: AutoStarted | None = Field(default=None, alias="autoStart")


class WorkflowWithVersions(Workflow):
    versions: list[str] = Field(description="every registered version, newest first")


class WorkflowName(Resource):
    name: str
    latest_version: str = Field(alias="latestVersion")
    version_count: int = Field(alias="versionCount")
    updated_at: str = Field(alias="updatedAt", description="when the latest was registered")


class WorkflowPage(Resource):
    items: list[WorkflowName]
    next_cursor: str | None = Field(alias="nextCursor")


class WorkflowVersion(Resource):
    id: str
    version: str
    created_at: str = Field(alias="createdAt")


class WorkflowVersions(Resource):
    name: str
    items: list[WorkflowVersion] = Field(description="newest first")


class WorkflowDeleted(Resource):
    name: str
    deleted_versions: list[str] = Field(alias="deletedVersions")


class Health(Resource):
    status: str


class Readiness(Resource):
    status: str = Field(description='"ready" or "unavailable"')
    checks: dict[str, str]
