"""`wait.event`: parks the step until an event of `name` matching `match` arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from pydantic import BaseModel, Field, model_validator

from app.errors import ExpressionError
from app.expressions.evaluator import ExpressionSyntaxError
from app.expressions.expression import compile_expression
from app.nodes.base import BaseNode, NodeContext, Params, Suspend, step_error
from app.nodes.compose import composition

EVENT_WAIT = "event"


class WaitEventParams(Params):
    name: str = Field(min_length=1, max_length=200, description="the event name to wait for")
    match: str | None = Field(
        default=None,
        max_length=10_000,
        description="an expression over `event` and the run's scope; none: any event of `name`",
    )
    timeout: int | None = Field(
        default=None, ge=1, le=365 * 86_400_000, description="ms; none: wait without end"
    )

    @model_validator(mode="after")
    def check_match(self) -> Self:
        if self.match is not None:
            try:
                compile_expression(self.match)
            except ExpressionSyntaxError as exc:
                raise ValueError(f"match: {exc}") from None
        return self


def _moment(state: dict[str, Any], key: str, value: datetime) -> datetime:
    """A time fixed on the first run and kept in the step state (a re-run keeps it)."""
    stored = state.get(key)
    if isinstance(stored, str):
        try:
            found = datetime.fromisoformat(stored)
        except ValueError:
            pass
        else:
            return found if found.tzinfo else found.replace(tzinfo=UTC)
    state[key] = value.isoformat()
    return value


class WaitEventNode(BaseNode):
    """Output: the event `{id, name, data, receivedAt}`. Events received up to
    TURNOUT_EVENT_KEEP_MS before the step first ran count too; on timeout the step fails
    with `event_timeout`."""

    name: ClassVar[str] = "wait.event"
    params_model: ClassVar[type[BaseModel]] = WaitEventParams
    # `match` is an expression evaluated here against each event, not a template.
    raw_params: ClassVar[frozenset[str]] = frozenset({"match"})
    waits: ClassVar[bool] = True

    async def run(self, ctx: NodeContext, params: WaitEventParams) -> Any:
        comp = composition(ctx, self.name)
        now = datetime.now(UTC)
        keep = timedelta(milliseconds=ctx.services.settings.event_keep_ms)
        since = _moment(ctx.state, "eventsSince", now - keep)
        expires = None
        if params.timeout is not None:
            expires = _moment(ctx.state, "expiresAt", now + timedelta(milliseconds=params.timeout))
        expression = compile_expression(params.match) if params.match else None

        def matcher(event: dict[str, Any]) -> bool:
            if expression is None:
                return True
            return bool(expression.evaluate({**ctx.scope, "event": event}))

        try:
            check = await comp.check_events(ctx, params.name, since, matcher)
        except ExpressionError as exc:
            await comp.stop_waiting(ctx)
            raise step_error(f"match: {exc.message}", code=exc.code, retryable=False) from exc
        if check.match is not None:
            await comp.stop_waiting(ctx)
            return check.match
        if expires is not None and datetime.now(UTC) >= expires:
            await comp.stop_waiting(ctx)
            raise step_error(
                f"no event '{params.name}' matched within {params.timeout} ms",
                code="event_timeout",
                retryable=False,
            )
        raise Suspend(
            EVENT_WAIT,
            until=expires,
            data={
                "event": params.name,
                "match": params.match,
                "since": since.isoformat(),
                "seen": check.seen,
                "windowStart": check.start.isoformat(),
                "nodeId": ctx.node_id,
            },
        )
