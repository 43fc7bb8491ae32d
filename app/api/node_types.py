"""`GET /node-types`: every registered node type, its params schema and complexity facts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from app.api.deps import RegistryDep
from app.nodes.catalog import NodeTypeInfo, describe_all
from app.workflows.model import CamelModel

router = APIRouter(tags=["node types"])


class NodeTypeComplexity(CamelModel):
    """What the complexity analyzer counts for one node of this type."""

    external: bool = Field(description="calls outside systems (an external call)")
    loop: bool = Field(description="runs a template per item (a loop)")
    human: bool = Field(description="waits for human input")
    estimated_duration_ms: float = Field(
        description="the estimate for the critical path; a delay counts its own `ms`"
    )


class NodeTypeResource(CamelModel):
    name: str
    description: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of `params`")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the output, when the type declares one"
    )
    complexity: NodeTypeComplexity


class NodeTypeList(CamelModel):
    items: list[NodeTypeResource]


def node_type_resource(info: NodeTypeInfo) -> NodeTypeResource:
    return NodeTypeResource(
        name=info.name,
        description=info.description,
        params_schema=info.params_schema,
        output_schema=info.output_schema,
        complexity=NodeTypeComplexity(
            external=info.external,
            loop=info.loop,
            human=info.human,
            estimated_duration_ms=info.estimated_duration_ms,
        ),
    )


@router.get(
    "/node-types",
    summary="Node types: params JSON Schema and complexity facts",
    response_model=NodeTypeList,
    response_model_by_alias=True,
)
async def list_node_types(registry: RegistryDep) -> NodeTypeList:
    return NodeTypeList(items=[node_type_resource(i) for i in describe_all(registry)])
