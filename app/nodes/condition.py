"""`condition`: evaluates a bare expression against the scope into `{result: bool}`."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from app.errors import ExpressionError
from app.expressions.evaluator import ExpressionSyntaxError
from app.expressions.expression import compile_expression
from app.nodes.base import BaseNode, NodeContext, Params


class ConditionParams(Params):
    expr: str = Field(min_length=1, max_length=10_000)


class ConditionNode(BaseNode):
    """`expr` is not rendered as a template: it is an expression evaluated here."""

    name: ClassVar[str] = "condition"
    params_model: ClassVar[type[BaseModel]] = ConditionParams
    expression_params: ClassVar[frozenset[str]] = frozenset({"expr"})

    async def run(self, ctx: NodeContext, params: ConditionParams) -> Any:
        try:
            # compile_expression keeps its own lru_cache: a second one here would only duplicate it.
            expression = compile_expression(params.expr)
        except (
            ExpressionSyntaxError
        ) as exc:  # validation catches this first; keep it a clean failure
            raise ExpressionError(str(exc)) from exc
        return {"result": bool(expression.evaluate(ctx.scope))}
