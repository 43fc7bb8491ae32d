"""Dashboard pages of event sinks: the subscriptions, their deliveries and recent failures."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.deps import PrincipalDep, SinksDep
from app.api.subscriptions import delivery_resource, subscription_resource
from app.errors import SubscriptionNotFound
from app.ui.pages import templates

router = APIRouter(prefix="/ui", include_in_schema=False)

STATUSES = ("pending", "delivered", "dead")


@router.get("/subscriptions", response_class=HTMLResponse)
async def subscriptions_page(
    request: Request, sinks: SinksDep, principal: PrincipalDep
) -> HTMLResponse:
    namespace = None if principal.is_admin else principal.namespace
    found = await sinks.store.listed(namespace)
    counts = await sinks.deliveries.counts([s.id for s in found])
    failures = await sinks.deliveries.failures([s.id for s in found], limit=50)
    context = {
        "items": [subscription_resource(s, counts.get(s.id)) for s in found],
        "failures": [delivery_resource(d) for d in failures],
        "statuses": STATUSES,
    }
    return templates.TemplateResponse(request, "subscriptions.html", context)


@router.get("/subscriptions/{subscription_id}", response_class=HTMLResponse)
async def subscription_page(
    request: Request,
    subscription_id: UUID,
    sinks: SinksDep,
    principal: PrincipalDep,
    status: str | None = None,
    cursor: int | None = None,
) -> HTMLResponse:
    namespace = None if principal.is_admin else principal.namespace
    record = await sinks.store.get(subscription_id, namespace)
    if record is None:
        raise SubscriptionNotFound(f"no subscription with id {subscription_id}")
    counts = await sinks.deliveries.counts([record.id])
    items, next_cursor = await sinks.deliveries.listed(
        record.id, status=status if status in STATUSES else None, limit=100, before_id=cursor
    )
    context = {
        "sub": subscription_resource(record, counts.get(record.id)),
        "items": [delivery_resource(d) for d in items],
        "next_cursor": next_cursor,
        "status": status if status in STATUSES else None,
        "statuses": STATUSES,
    }
    return templates.TemplateResponse(request, "subscription.html", context)
