"""`transform`: the output is the params themselves, already rendered by the runner."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, RootModel

from app.nodes.base import BaseNode, NodeContext


class TransformParams(RootModel[dict[str, Any]]):
    """Any object: a root model, so keys such as `json` or `schema` cannot clash with fields."""


class TransformNode(BaseNode):
    """Builds an object from templates; the evaluated params are the output."""

    name: ClassVar[str] = "transform"
    params_model: ClassVar[type[BaseModel]] = TransformParams

    async def run(self, ctx: NodeContext, params: TransformParams) -> Any:
        return params.root
