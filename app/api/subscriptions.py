"""`/subscriptions`: event sinks (webhooks, Redis Streams), their deliveries, redelivery."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from app.api.deps import PrincipalDep, SinksDep
from app.api.errors import error_responses
from app.api.schemas import iso
from app.api.sink_resources import (
    Delivery,
    DeliveryPage,
    Subscription,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPage,
)
from app.auth.keys import Principal
from app.errors import DeliveryNotFound
from app.sinks.service import SubscriptionService
from app.store.deliveries import DeliveryRecord
from app.store.subscriptions import SubscriptionRecord

router = APIRouter(tags=["subscriptions"])

SubscriptionId = Annotated[UUID, Path(description="the subscription's id")]
DeliveryId = Annotated[int, Path(ge=1, description="the delivery's id")]


def _scope(principal: Principal) -> str | None:
    """The namespace a key sees (an admin key sees every one)."""
    return None if principal.is_admin else principal.namespace


def subscription_resource(
    record: SubscriptionRecord, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "namespace": record.namespace,
        "sink": record.sink,
        "url": record.url,
        "stream": record.stream,
        "events": record.events,
        "workflow": record.workflow,
        "description": record.description,
        "status": record.status,
        "batchSize": record.batch_size,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "deliveries": counts or {},
    }


def delivery_resource(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "subscriptionId": str(record.subscription_id),
        "eventId": f"{record.execution_id}:{record.seq}",
        "executionId": str(record.execution_id),
        "seq": record.seq,
        "lastSeq": record.last_seq,
        "events": record.last_seq - record.seq + 1,
        "type": record.event_type,
        "status": record.status,
        "attempts": record.attempts,
        "nextAttemptAt": iso(record.next_attempt_at) if record.status == "pending" else None,
        "lastStatus": record.last_status,
        "lastError": record.last_error,
        "createdAt": iso(record.created_at),
        "deliveredAt": iso(record.delivered_at),
    }


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Subscribe a webhook or a Redis stream to events",
    response_model=None,
    responses={201: {"model": SubscriptionCreated}, **error_responses(401, 403, 413, 415, 422)},
)
async def create_subscription(
    body: SubscriptionCreate, sinks: SinksDep, principal: PrincipalDep
) -> JSONResponse:
    namespace = body.namespace or principal.namespace
    record, secret = await SubscriptionService(sinks).create(
        body.model_dump(exclude_none=True), namespace
    )
    answer = {**subscription_resource(record), "secret": secret}
    return JSONResponse(
        answer, status_code=201, headers={"Location": f"/subscriptions/{record.id}"}
    )


@router.get(
    "/subscriptions",
    summary="The subscriptions, oldest first, with their deliveries' counts",
    response_model=SubscriptionPage,
    responses=error_responses(401, 403),
)
async def list_subscriptions(sinks: SinksDep, principal: PrincipalDep) -> dict[str, Any]:
    found = await sinks.store.listed(_scope(principal))
    counts = await sinks.deliveries.counts([s.id for s in found])
    return {"items": [subscription_resource(s, counts.get(s.id)) for s in found]}


@router.get(
    "/subscriptions/{subscription_id}",
    summary="One subscription",
    response_model=Subscription,
    responses=error_responses(401, 403, 404, 422),
)
async def get_subscription(
    subscription_id: SubscriptionId, sinks: SinksDep, principal: PrincipalDep
) -> dict[str, Any]:
    record = await SubscriptionService(sinks).get(subscription_id, _scope(principal))
    counts = await sinks.deliveries.counts([record.id])
    return subscription_resource(record, counts.get(record.id))


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change a subscription's url, stream, events, workflow or description",
    response_model=Subscription,
    responses=error_responses(401, 403, 404, 413, 415, 422),
)
async def change_subscription(
    subscription_id: SubscriptionId,
    body: SubscriptionChange,
    sinks: SinksDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    record = await SubscriptionService(sinks).change(
        subscription_id, _scope(principal), body.model_dump(exclude_unset=True)
    )
    counts = await sinks.deliveries.counts([record.id])
    return subscription_resource(record, counts.get(record.id))


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete a subscription and its deliveries",
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_subscription(
    subscription_id: SubscriptionId, sinks: SinksDep, principal: PrincipalDep
) -> Response:
    await SubscriptionService(sinks).remove(subscription_id, _scope(principal))
    return Response(status_code=204)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    summary="A subscription's deliveries, newest first",
    response_model=DeliveryPage,
    responses=error_responses(401, 403, 404, 422),
)
async def list_deliveries(
    subscription_id: SubscriptionId,
    sinks: SinksDep,
    principal: PrincipalDep,
    status: Annotated[
        str | None, Query(pattern="^(pending|delivered|dead)$", description="one status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, description="`nextCursor` of the page before")
    ] = None,
) -> dict[str, Any]:
    record = await SubscriptionService(sinks).get(subscription_id, _scope(principal))
    items, next_cursor = await sinks.deliveries.listed(
        record.id, status=status, limit=limit, before_id=cursor
    )
    return {"items": [delivery_resource(d) for d in items], "nextCursor": next_cursor}


@router.post(
    "/subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery again now (a dead one, or any other)",
    response_model=Delivery,
    responses=error_responses(401, 403, 404, 422),
)
async def redeliver(
    subscription_id: SubscriptionId,
    delivery_id: DeliveryId,
    sinks: SinksDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    record = await SubscriptionService(sinks).get(subscription_id, _scope(principal))
    found = await sinks.deliveries.redeliver(record.id, delivery_id)
    if found is None:
        raise DeliveryNotFound(f"subscription {record.id} has no delivery {delivery_id}")
    await sinks.signal.poke()
    return delivery_resource(found)
