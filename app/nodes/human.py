"""`human.input`: parks the step until `POST /execution/{id}/input` delivers data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from pydantic import BaseModel, Field, model_validator

from app.jsonschemas import schema_problems, validate
from app.nodes.base import BaseNode, NodeContext, Params, Suspend, step_error


class HumanInputParams(Params):
    prompt: str = Field(min_length=1, max_length=10_000)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    timeout: int | None = Field(default=None, ge=1, le=365 * 86_400_000)
    default: Any = None

    @model_validator(mode="after")
    def check_schema(self) -> Self:
        if self.schema_ is None:
            return self
        for path, message in schema_problems(self.schema_):
            where = "".join(f"[{p!r}]" for p in path)
            raise ValueError(f"schema{where} {message}")
        if self.has_default:
            # A default that the schema rejects would hand the workflow data no human could send.
            errors = validate(self.schema_, self.default, formats=False)
            if errors:
                raise ValueError(f"default does not match schema: {errors[0].message}")
        return self

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


def deadline(state: dict[str, Any], timeout_ms: int | None, now: datetime) -> datetime | None:
    """Fixed on the first run and kept in the step state, so a re-run does not extend it."""
    if timeout_ms is None:
        return None
    stored = state.get("expiresAt")
    if isinstance(stored, str):
        return datetime.fromisoformat(stored)
    expires = now + timedelta(milliseconds=timeout_ms)
    state["expiresAt"] = expires.isoformat()
    return expires


def human_view(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a client needs to answer a `human.input` step (and who answered it), from its
    stored state; None for any other step."""
    wait = state.get("waitData")
    if state.get("waitReason") != "human_input" or not isinstance(wait, dict):
        return None
    view: dict[str, Any] = {
        "prompt": wait.get("prompt"),
        "schema": wait.get("schema"),
        "deadline": state.get("expiresAt"),
    }
    if "inputBy" in state:
        view["answeredBy"] = state["inputBy"]
        view["answeredAt"] = state.get("inputAt")
    return view


class HumanInputNode(BaseNode):
    """Returns the delivered input; on timeout, `default` if given, else fails."""

    name: ClassVar[str] = "human.input"
    params_model: ClassVar[type[BaseModel]] = HumanInputParams
    human: ClassVar[bool] = True

    async def run(self, ctx: NodeContext, params: HumanInputParams) -> Any:
        if "input" in ctx.state:
            return ctx.state["input"]
        now = datetime.now(UTC)
        expires = deadline(ctx.state, params.timeout, now)
        if expires is not None and now >= expires:
            if params.has_default:
                return params.default
            raise step_error(
                f"no input arrived within {params.timeout} ms",
                code="human_timeout",
                retryable=False,
            )
        raise Suspend(
            "human_input",
            until=expires,
            data={"prompt": params.prompt, "schema": params.schema_, "nodeId": ctx.node_id},
        )
