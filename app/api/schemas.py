"""Request bodies and the execution resource as the API shows them (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Path
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.api.flow import flow_fields
from app.config import get_settings
from app.engine.state import StepState
from app.jsonvalue import NotJSON, normalise
from app.nodes.human import human_view
from app.nodes.template import MAX_DURATION_MS
from app.nodes.workflow import child_view
from app.observability.usage import totals as usage_totals
from app.store.composition import CompositionStore
from app.store.records import MAX_PRIORITY, ExecutionRecord, WorkflowRecord
from app.workflows.model import CamelModel, WorkflowBody

# For path and query strings: Postgres cannot compare with (or store) a string holding NUL.
NO_NUL = r"^[^\x00]*$"
NamePath = Annotated[str, Path(pattern=NO_NUL)]


class JSONBody(CamelModel):
    """A request body whose every field holds JSON that can be stored and read back.

    NaN, ±Infinity (and `1e400`), NUL, lone surrogates and nesting deeper than
    TURNOUT_MAX_JSON_DEPTH are refused here (422), before anything is written."""

    @field_validator("*", mode="before")
    @classmethod
    def _json_value(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            return normalise(value, max_depth=get_settings().max_json_depth)
        except NotJSON as exc:
            field = cls.model_fields.get(info.field_name or "")
            name = (field.alias if field else None) or info.field_name or "body"
            dot = "." if exc.path and isinstance(exc.path[0], str) else ""
            raise PydanticCustomError(
                "not_json", "{message}", {"message": f"{name}{dot}{exc.describe('')}"}
            ) from None


class RunOptions(CamelModel):
    timeout: int | None = Field(default=None, ge=1, le=MAX_DURATION_MS, description="ms")
    priority: int = Field(default=0, ge=0, le=MAX_PRIORITY, description="higher runs first")
    tags: list[str] = Field(default_factory=list, max_length=50)


class RegisteredRunBody(JSONBody):
    """`POST /workflows/{name}/run` (and what `POST /workflow/run` adds to)."""

    version: str | None = Field(default=None, max_length=100)
    input: Any = Field(default_factory=dict)
    mode: Literal["auto", "immediate", "queued"] = "auto"
    options: RunOptions = Field(default_factory=RunOptions)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunBody(RegisteredRunBody):
    """`POST /workflow/run`: an inline workflow, or a registered one by name."""

    workflow: WorkflowBody | None = None
    workflow_id: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _one_workflow(self) -> RunBody:
        if (self.workflow is None) == (self.workflow_id is None):
            raise ValueError("give exactly one of 'workflow' or 'workflowId'")
        return self


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def step_resource(step: StepState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "nodeId": step.node_id,
        "stepKey": step.key,
        "status": str(step.status),
        "attempt": step.attempt,
        "startedAt": iso(step.started_at),
        "completedAt": iso(step.completed_at),
        "durationMs": step.duration_ms,
        "output": step.output,
        "error": step.error,
    }
    if step.item_index is not None:
        out["itemIndex"] = step.item_index
    if step.state.get("skipReason"):
        out["skipReason"] = step.state["skipReason"]
    if isinstance(step.state.get("usage"), dict):
        out["usage"] = step.state["usage"]
    human = human_view(step.state)
    if human is not None:
        out["humanInput"] = human
    child = child_view(step.state)
    if child is not None:
        out["child"] = child
    return out


def execution_resource(record: ExecutionRecord, *, steps: bool = True) -> dict[str, Any]:
    duration = None
    if record.started_at and record.completed_at:
        duration = round((record.completed_at - record.started_at).total_seconds() * 1000, 3)
    out: dict[str, Any] = {
        "executionId": str(record.id),
        "workflowId": record.workflow_id,
        "workflowName": record.workflow_name,
        "workflowVersion": record.workflow_version,
        "status": record.status,
        "mode": record.execution_mode,
        "requestedMode": record.requested_mode,
        "priority": record.priority,
        "tags": record.tags,
        "attempt": record.attempt,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "startedAt": iso(record.started_at),
        "completedAt": iso(record.completed_at),
        "durationMs": duration,
        "input": record.input,
        "result": record.result,
        "error": record.error,
        "complexity": record.complexity,
        "progress": {"done": record.progress_done, "total": record.progress_total},
        "metadata": record.metadata,
    }
    if record.wake_at is not None:
        out["wakeAt"] = iso(record.wake_at)
    if record.schedule_id is not None:
        out["schedule"] = {"id": str(record.schedule_id), "slot": iso(record.schedule_slot)}
    out["parent"] = record.parent.to_dict() if record.parent else None
    out.update(flow_fields(record))
    if steps:
        out["steps"] = [step_resource(s) for s in record.steps]
        out["usage"] = usage_totals([s.state.get("usage") or {} for s in record.steps])
    return out


async def child_refs(store: CompositionStore, execution_id: UUID) -> list[dict[str, Any]]:
    """The executions this one's `workflow` steps started, oldest first."""
    return [
        {
            "executionId": str(child.id),
            "stepId": child.parent_step_key,
            "workflowName": child.workflow_name,
            "status": child.status,
        }
        for child in await store.children(execution_id)
    ]


def accepted_resource(record: ExecutionRecord, complexity: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "executionId": str(record.id),
        "status": record.status,
        "complexity": complexity,
        "mode": record.execution_mode,
        "links": {
            "self": f"/execution/{record.id}",
            "stream": f"/execution/{record.id}/stream",
        },
        **flow_fields(record),
    }


def workflow_resource(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "name": record.name,
        "version": record.version,
        "createdAt": iso(record.created_at),
        "definition": record.definition,
    }
