"""The workflow definition: pydantic models of the JSON format (docs/workflows.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class CamelModel(BaseModel):
    """Base for the wire format: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RetryPolicy(CamelModel):
    """Per-node retry: how many attempts in all, and how long to wait between them."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial_delay: int = Field(default=1000, ge=0, le=86_400_000)
    max_delay: int = Field(default=60_000, ge=0, le=86_400_000)
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: bool = True


class NodeDefinition(CamelModel):
    """One step of the DAG. `params` are checked against the node type's params model."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    when: str | None = None
    retry: RetryPolicy | None = None
    timeout: int | None = Field(default=None, ge=1, le=30 * 86_400_000)
    name: str | None = None


class WorkflowDefinition(CamelModel):
    """A whole workflow: nodes, output mapping, failure policy."""

    name: str = Field(default="inline", min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=100)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    nodes: list[NodeDefinition] = Field(min_length=1)
    output: Any = None
    on_failure: Literal["stop", "continue"] = "stop"
    max_concurrency: int = Field(default=8, ge=1, le=1000)


def _unchanged(value: Any) -> Any:
    return value


# A request field holding a definition: validated as a plain object, so that `compile_workflow`
# reports every problem at once (a typed field would stop at pydantic's first pass), and
# documented in OpenAPI as the real model, so `/openapi.json` shows every field.
WorkflowBody = Annotated[
    dict[str, Any], BeforeValidator(_unchanged, json_schema_input_type=WorkflowDefinition)
]
