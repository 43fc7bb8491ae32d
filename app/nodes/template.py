"""What a workflow node and foreach's node template share: the wire format's base model, the
retry policy, the bound on a timeout (30 days), and the template's shape itself.

Below `workflows` (whose definition model uses them) and `engine`: it imports neither."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.nodes.base import Params

# The longest a timeout, a delay or an execution may be: 30 days, in ms.
MAX_DURATION_MS = 30 * 86_400_000


class CamelModel(BaseModel):
    """Base for the wire format: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RetryPolicy(CamelModel):
    """Per-node retry: how many attempts in all, and how long to wait between them."""

    max_attempts: int = Field(
        default=1, ge=1, le=100, description="attempts in all, the first included"
    )
    backoff: Literal["exponential", "fixed"] = Field(
        default="exponential", description="exponential: initialDelay * multiplier^(n-1)"
    )
    initial_delay: int = Field(
        default=1000, ge=0, le=86_400_000, description="ms before the second attempt"
    )
    max_delay: int = Field(default=60_000, ge=0, le=86_400_000, description="cap on a delay, ms")
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0, description="growth of exponential")
    jitter: bool = Field(default=True, description="keep half the delay, randomise the rest")


class NodeTemplate(Params):
    """The per-item node: like a workflow node without id, edges or `when`."""

    type: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout: int | None = Field(default=None, ge=1, le=MAX_DURATION_MS)


NODE_TEMPLATE_KEYS = tuple(NodeTemplate.model_fields)
