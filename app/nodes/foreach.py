"""`foreach`: runs a node template once per item, `concurrency` at a time, via the runner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.errors import ParamsInvalid
from app.nodes.base import BaseNode, NodeContext, Params, step_error
from app.nodes.template import NodeTemplate

# Item count and template duration are unknown at analysis time; a guess the analyzer can use.
FOREACH_ESTIMATE_MS = 100.0


class ForeachParams(Params):
    items: list[Any]
    concurrency: int = Field(default=10, ge=1, le=1000)
    node: NodeTemplate


class ForeachNode(BaseNode):
    """Output is the list of per-item outputs in item order; each item is its own step row."""

    name: ClassVar[str] = "foreach"
    params_model: ClassVar[type[BaseModel]] = ForeachParams
    loop: ClassVar[bool] = True
    raw_params: ClassVar[frozenset[str]] = frozenset({"node"})

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        return FOREACH_ESTIMATE_MS

    async def run(self, ctx: NodeContext, params: ForeachParams) -> Any:
        limit = ctx.services.settings.max_foreach_items
        if len(params.items) > limit:
            raise ParamsInvalid(
                f"foreach got {len(params.items)} items; the limit is {limit} "
                "(TURNOUT_MAX_FOREACH_ITEMS)"
            )
        if ctx.run_items is None:
            raise step_error(
                "foreach needs the runner's item runner, which this context lacks",
                code="foreach_unsupported",
                retryable=False,
            )
        template = params.node.model_dump(by_alias=True, exclude_none=True)
        return await ctx.run_items(params.items, params.concurrency, template)
