"""Flow control of a workflow: a concurrency key and a start-rate limit (docs/flow-control.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from app.errors import ExpressionError
from app.expressions.bounded import ExpressionSyntaxError
from app.expressions.templates import compile_template
from app.nodes.template import CamelModel

# The names a key may read: it is evaluated once, when the execution is created.
KEY_NAMES = frozenset({"input"})
MAX_KEY_CHARS = 200


def _check_key(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        template = compile_template(value)
    except ExpressionSyntaxError as exc:
        raise ValueError(str(exc)) from None
    unknown = sorted(template.names - KEY_NAMES)
    if unknown:
        raise ValueError(
            f"a key may only read 'input' (it is evaluated when the run is created); "
            f"found {', '.join(repr(n) for n in unknown)}"
        )
    return value


class ConcurrencyPolicy(CamelModel):
    """At most `limit` executions of this workflow run at once per value of `key`."""

    key: str | None = Field(
        default=None,
        max_length=MAX_KEY_CHARS,
        description="a template over `input`, e.g. '{{ input.tenant }}'; none: one key for "
        "the whole workflow",
    )
    limit: int = Field(default=1, ge=1, le=10_000, description="executions running at once")
    strategy: Literal["queue", "cancel_in_progress", "cancel_newest"] = Field(
        default="queue",
        description="queue: the excess waits pending; cancel_in_progress: a newcomer cancels "
        "the older ones of its key; cancel_newest: the newcomer is cancelled",
    )

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str | None) -> str | None:
        return _check_key(value)


class RateLimitPolicy(CamelModel):
    """Executions of this workflow start at most `perSecond` per value of `key` (token bucket)."""

    key: str | None = Field(
        default=None,
        max_length=MAX_KEY_CHARS,
        description="a template over `input`; none: one bucket for the whole workflow",
    )
    per_second: float = Field(gt=0, le=100_000, description="tokens added per second")
    burst: int = Field(default=1, ge=1, le=100_000, description="the bucket's size")

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str | None) -> str | None:
        return _check_key(value)


def key_value(template: str | None, input_value: Any, where: str = "concurrency") -> str:
    """A key's value for one run: its template rendered over `input`, as text.

    Raises KeyInvalid when it cannot be evaluated or is not a short scalar."""
    if template is None:
        return ""
    try:
        value = compile_template(template).render({"input": input_value})
    except ExpressionError as exc:
        raise KeyInvalid(
            where, f"the key '{template}' could not be evaluated: {exc.message}"
        ) from None
    if isinstance(value, bool):
        value = str(value).lower()
    if not isinstance(value, str | int | float):
        kind = "null" if value is None else type(value).__name__
        raise KeyInvalid(where, f"the key '{template}' gave {kind}; it must be text or a number")
    text = str(value)
    if len(text) > MAX_KEY_CHARS:
        raise KeyInvalid(
            where, f"the key '{template}' gave {len(text)} characters (at most {MAX_KEY_CHARS})"
        )
    return text


class KeyInvalid(ValueError):
    """A concurrency or rate-limit key that does not evaluate to a short text for this input."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where  # the workflow field: "concurrency" or "rateLimit"
        self.message = message


def flow_spec(
    concurrency: ConcurrencyPolicy | None,
    rate_limit: RateLimitPolicy | None,
    input_value: Any,
    namespace_limit: int,
) -> dict[str, Any] | None:
    """What the claim gate needs, with the keys evaluated once: stored on the execution.

    None when nothing limits the run (the claim's fast path)."""
    spec: dict[str, Any] = {}
    if concurrency is not None:
        spec["concurrency"] = {
            "key": key_value(concurrency.key, input_value),
            "limit": concurrency.limit,
            "strategy": concurrency.strategy,
        }
    if rate_limit is not None:
        spec["rateLimit"] = {
            "key": key_value(rate_limit.key, input_value, "rateLimit"),
            "perSecond": rate_limit.per_second,
            "burst": rate_limit.burst,
        }
    if namespace_limit > 0:
        spec["namespaceLimit"] = namespace_limit
    return spec or None
