"""`bench.fib`: a node type plugin computing a naive recursive Fibonacci (W3's light step)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.nodes.base import BaseNode, NodeContext, Params


def fib(n: int) -> int:
    """The naive recursion of the Windmill benchmark: about 177 calls for n=10."""
    return n if n <= 1 else fib(n - 1) + fib(n - 2)


class FibParams(Params):
    n: int = Field(default=10, ge=0, le=30)


class FibNode(BaseNode):
    """Computes fib(n) in the step itself (CPU-bound, no I/O)."""

    name: ClassVar[str] = "bench.fib"
    params_model: ClassVar[type[BaseModel]] = FibParams

    async def run(self, ctx: NodeContext, params: FibParams) -> Any:
        return {"n": params.n, "value": fib(params.n)}
