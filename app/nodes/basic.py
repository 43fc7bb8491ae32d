"""`noop` and `fail`: the smallest node types, for tests and benchmarks."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.nodes.base import BaseNode, NodeContext, Params, step_error


class NoopParams(Params):
    value: Any = None


class NoopNode(BaseNode):
    """Outputs `value` when given (even null), else the execution's input."""

    name: ClassVar[str] = "noop"
    params_model: ClassVar[type[BaseModel]] = NoopParams

    async def run(self, ctx: NodeContext, params: NoopParams) -> Any:
        if "value" in params.model_fields_set:
            return params.value
        return ctx.scope.get("input")


class FailParams(Params):
    message: str = Field(default="failed", min_length=1, max_length=10_000)
    code: str = Field(default="fail", pattern=r"^[A-Za-z0-9_.\-]{1,100}$")
    retryable: bool = True


class FailNode(BaseNode):
    """Always fails with the given message, code and retry decision."""

    name: ClassVar[str] = "fail"
    params_model: ClassVar[type[BaseModel]] = FailParams

    async def run(self, ctx: NodeContext, params: FailParams) -> Any:
        raise step_error(params.message, code=params.code, retryable=params.retryable)
