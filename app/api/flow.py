"""Flow control in the execution resource: why a run waits, and the keys it was given."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.store.records import ExecutionRecord


class Resource(BaseModel):
    # As app.api.resources.Resource (which imports these models): fields may be added.
    model_config = ConfigDict(extra="allow")


class PendingReason(Resource):
    """Why a `pending` execution has not started: a flow-control gate held it back."""

    code: str = Field(description="concurrency_limit, namespace_concurrency_limit or rate_limited")
    key: str | None = Field(default=None, description="the key's value for this run")
    limit: int | None = Field(default=None, description="the slots of the key or namespace")
    running: int | None = Field(default=None, description="how many were running then")
    namespace: str | None = None
    per_second: float | None = Field(default=None, alias="perSecond")
    burst: int | None = None
    retry_at: str | None = Field(
        default=None, alias="retryAt", description="rate_limited: when it tries again"
    )


class FlowControl(Resource):
    """The run's gates, with its keys evaluated when it was created."""

    concurrency: dict[str, Any] | None = Field(default=None, description="{key, limit, strategy}")
    rate_limit: dict[str, Any] | None = Field(
        default=None, alias="rateLimit", description="{key, perSecond, burst}"
    )
    namespace_limit: int | None = Field(default=None, alias="namespaceLimit")


def flow_fields(record: ExecutionRecord) -> dict[str, Any]:
    """The resource's `flowControl` and (while pending) `pendingReason`, when there are any."""
    out: dict[str, Any] = {}
    if record.flow is not None:
        out["flowControl"] = record.flow
    if record.pending_reason is not None and record.status == "pending":
        out["pendingReason"] = record.pending_reason
    return out
