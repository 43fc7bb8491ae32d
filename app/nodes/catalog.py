"""What each registered node type is, for `GET /node-types` and the generated docs (pure)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.docnotes import SUMMARIES
from app.nodes.base import NodeType


@dataclass(frozen=True, slots=True)
class NodeTypeInfo:
    """A node type's params schema and the facts the complexity analyzer counts."""

    name: str
    description: str
    params_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    external: bool
    loop: bool
    human: bool
    # The analyzer's estimate for a node of this type whose params say nothing more; a type
    # may refine it from its params (a delay counts its own `ms`).
    estimated_duration_ms: float


def _model_schema(model: Any) -> dict[str, Any] | None:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_json_schema(by_alias=True)
    return None


def _description(node_type: NodeType) -> str:
    if node_type.name in SUMMARIES and type(node_type).__module__.startswith("app.nodes."):
        return SUMMARIES[node_type.name]
    doc = inspect.getdoc(type(node_type)) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _estimate(node_type: NodeType) -> float:
    estimate = getattr(node_type, "estimate_ms", None)
    return float(estimate({})) if callable(estimate) else 0.0


def describe(node_type: NodeType) -> NodeTypeInfo:
    """One node type as users see it; plugins that omit the optional facts get defaults."""
    return NodeTypeInfo(
        name=node_type.name,
        description=_description(node_type),
        params_schema=_model_schema(getattr(node_type, "params_model", None)) or {},
        output_schema=_model_schema(getattr(node_type, "output_model", None)),
        external=bool(getattr(node_type, "external", False)),
        loop=bool(getattr(node_type, "loop", False)),
        human=bool(getattr(node_type, "human", False)),
        estimated_duration_ms=_estimate(node_type),
    )


def describe_all(types: Iterable[NodeType]) -> list[NodeTypeInfo]:
    """Every type, sorted by name."""
    return sorted((describe(t) for t in types), key=lambda info: info.name)
