"""The workflow definition: pydantic models of the JSON format (docs/workflows.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from app.expressions.evaluator import ExpressionSyntaxError
from app.expressions.expression import compile_expression
from app.nodes.template import MAX_DURATION_MS, CamelModel, RetryPolicy
from app.workflows.flow import ConcurrencyPolicy, RateLimitPolicy

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"

__all__ = ["CamelModel", "NodeDefinition", "RetryPolicy", "WorkflowBody", "WorkflowDefinition"]


class NodeDefinition(CamelModel):
    """One step of the DAG. `params` are checked against the node type's params model."""

    id: str = Field(
        pattern=NODE_ID_PATTERN, description="unique; expressions read the output by it"
    )
    type: str = Field(min_length=1, max_length=200, description="a node type: GET /node-types")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the type's params; strings may hold {{ templates }}"
    )
    depends_on: list[str] = Field(default_factory=list, description="ordering without data")
    when: str | None = Field(default=None, description="an expression; false skips the node")
    retry: RetryPolicy | None = Field(default=None, description="none: a single attempt")
    timeout: int | None = Field(
        default=None, ge=1, le=MAX_DURATION_MS, description="ms per attempt (step_timeout)"
    )
    name: str | None = Field(default=None, description="a label for people")


class RunLimits(CamelModel):
    """What one run may do; a limit not given takes the service-wide default."""

    max_steps: int | None = Field(
        default=None, ge=1, description="steps run, foreach items counted"
    )
    max_output_bytes: int | None = Field(
        default=None, ge=1, description="bytes of step outputs (as JSON), all steps together"
    )
    max_duration_ms: int | None = Field(default=None, ge=1, description="wall time of a run")


class EventTrigger(CamelModel):
    """`on`: each event of this name (for which `when` holds) starts a run of the newest
    registered version, with the event as its input; at most one run per event id."""

    event: str = Field(min_length=1, max_length=200, description="the event name")
    when: str | None = Field(
        default=None, max_length=10_000, description="an expression over `event`; none: always"
    )

    @field_validator("when")
    @classmethod
    def check_when(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            expr = compile_expression(value)
        except ExpressionSyntaxError as exc:
            raise ValueError(str(exc)) from None
        unknown = sorted(expr.names - {"event"})
        if unknown:
            raise ValueError(f"a trigger's `when` sees only `event`, not {', '.join(unknown)}")
        return value


class WorkflowDefinition(CamelModel):
    """A whole workflow: nodes, output mapping, failure policy."""

    name: str = Field(default="inline", min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=100)
    description: str | None = None
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema (2020-12) the input must match"
    )
    nodes: list[NodeDefinition] = Field(min_length=1)
    output: Any = Field(
        default=None, description="the result, with templates; none: the sink nodes' outputs"
    )
    on_failure: Literal["stop", "continue"] = Field(
        default="stop", description="stop: the first failure ends the run; continue: branches go on"
    )
    max_concurrency: int = Field(default=8, ge=1, le=1000, description="steps running at once")
    limits: RunLimits | None = None
    auto_start: bool | None = Field(
        default=None, description="registered: run this version once (input {}) when registered"
    )
    on: EventTrigger | None = Field(default=None, description="start a run on each event")
    concurrency: ConcurrencyPolicy | None = None
    rate_limit: RateLimitPolicy | None = None


def _unchanged(value: Any) -> Any:
    return value


# A request field holding a definition: validated as a plain object, so that `compile_workflow`
# reports every problem at once (a typed field would stop at pydantic's first pass), and
# documented in OpenAPI as the real model, so `/openapi.json` shows every field.
WorkflowBody = Annotated[
    dict[str, Any], BeforeValidator(_unchanged, json_schema_input_type=WorkflowDefinition)
]
