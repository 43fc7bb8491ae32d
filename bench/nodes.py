"""`bench.fib`: a node type plugin computing a naive recursive Fibonacci (W3's light step).

Not registered by a normal install: the harness starts its API and workers with
`TURNOUT_PLUGINS=bench.nodes:FibNode` (see `PLUGIN` and `bench.services.Namespace.env`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.nodes.base import BaseNode, NodeContext, Params

PLUGIN = "bench.nodes:FibNode"  # the TURNOUT_PLUGINS value that registers it
NS_PER_CALL = 100  # fib(25), 242,785 calls, takes ~12 ms here: ~50 ns a call, doubled


def fib(n: int) -> int:
    """The naive recursion of the Windmill benchmark: about 177 calls for n=10."""
    return n if n <= 1 else fib(n - 1) + fib(n - 2)


class FibParams(Params):
    n: int = Field(default=10, ge=0, le=30)


class FibNode(BaseNode):
    """Computes fib(n) in the step itself (CPU-bound, no I/O)."""

    name: ClassVar[str] = "bench.fib"
    params_model: ClassVar[type[BaseModel]] = FibParams

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        """calls(n) = 2 * fib(n + 1) - 1; a templated `n` is taken at its maximum, 30."""
        n = params.get("n", 10)
        n = n if type(n) is int and 0 <= n <= 30 else 30
        a, b = 0, 1
        for _ in range(n + 1):
            a, b = b, a + b
        return (2 * a - 1) * NS_PER_CALL / 1e6

    async def run(self, ctx: NodeContext, params: FibParams) -> Any:
        return {"n": params.n, "value": fib(params.n)}
