"""What `/subscriptions` takes and answers, as models (they document `/openapi.json`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app.api.resources import Resource
from app.auth.keys import NAME
from app.sinks.batches import MAX_BATCH
from app.sinks.patterns import EVENT_TYPES, WILDCARDS

NO_NUL = r"^[^\x00]*$"

# An event pattern: the schema lists the ones there are; the service answers a 422 naming
# them for any other string (a typo would match nothing).
Pattern = Annotated[
    str, WithJsonSchema({"type": "string", "enum": sorted(WILDCARDS | EVENT_TYPES)})
]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sink: Literal["webhook", "redis-stream"]
    url: str | None = Field(default=None, max_length=2000, description="webhook: where to POST")
    stream: str | None = Field(default=None, max_length=200, description="redis-stream: the key")
    events: list[Pattern] = Field(
        min_length=1,
        max_length=50,
        description="patterns: '*', 'execution.*', 'step.*' or event types ('step.failed')",
    )
    workflow: str | None = Field(
        default=None, max_length=200, pattern=NO_NUL, description="only this workflow's events"
    )
    namespace: str | None = Field(
        default=None, pattern=NAME.pattern, description="default: the key's namespace"
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        pattern=NO_NUL,
        description="webhook signing secret (default: generated, shown once)",
    )
    description: str | None = Field(default=None, max_length=500, pattern=NO_NUL)
    batch_size: int = Field(
        default=1,
        ge=1,
        le=MAX_BATCH,
        alias="batchSize",
        description="events per delivery: 1 sends each event on its own; more makes a webhook's"
        " body a JSON array of up to this many events (a stream gets them in one pipeline)",
    )


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    stream: str | None = Field(default=None, max_length=200)
    events: list[Pattern] | None = Field(default=None, min_length=1, max_length=50)
    workflow: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    description: str | None = Field(default=None, max_length=500, pattern=NO_NUL)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH, alias="batchSize")
    status: Literal["active"] | None = Field(
        default=None, description="'active' clears 'failing' by hand"
    )


class Subscription(Resource):
    id: str
    namespace: str
    sink: str
    url: str | None
    stream: str | None
    events: list[str]
    workflow: str | None
    description: str | None
    status: str = Field(description="active, or failing (a delivery went dead)")
    batch_size: int = Field(alias="batchSize", description="events per delivery")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    deliveries: dict[str, int] = Field(description="how many deliveries are in each status")


class SubscriptionCreated(Subscription):
    secret: str | None = Field(description="the signing secret: shown this once only")


class SubscriptionPage(Resource):
    items: list[Subscription]


class Delivery(Resource):
    id: int
    subscription_id: str = Field(alias="subscriptionId")
    event_id: str = Field(alias="eventId", description="{executionId}:{seq}, of its first event")
    execution_id: str = Field(alias="executionId")
    seq: int = Field(description="its first event's seq")
    last_seq: int = Field(
        alias="lastSeq",
        description="its last event's seq: a delivery carries the consecutive events "
        "seq .. lastSeq that one commit made and the subscription takes",
    )
    events: int = Field(description="how many events it carries")
    type: str = Field(description="its first event's type")
    status: str = Field(description="pending, delivered or dead")
    attempts: int
    next_attempt_at: str | None = Field(alias="nextAttemptAt")
    last_status: int | None = Field(alias="lastStatus")
    last_error: str | None = Field(alias="lastError")
    created_at: str = Field(alias="createdAt")
    delivered_at: str | None = Field(alias="deliveredAt")


class DeliveryPage(Resource):
    items: list[Delivery]
    next_cursor: int | None = Field(alias="nextCursor")
