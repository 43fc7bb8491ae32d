"""Server-sent events: `GET /execution/{id}/stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import RuntimeDep
from app.errors import RequestInvalid
from app.events.stream import event_json, execution_events

router = APIRouter(tags=["streams"])


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise RequestInvalid("Last-Event-ID must be an event seq (a whole number)")
        return int(last_event_id)
    return after or 0


@router.get(
    "/execution/{execution_id}/stream",
    summary="Stream an execution's events (SSE): stored ones after Last-Event-ID, then live",
    response_class=EventSourceResponse,
)
async def stream_execution(
    execution_id: UUID,
    runtime: RuntimeDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> EventSourceResponse:
    start = _resume_point(last_event_id, after)
    await runtime.repo.get_execution(execution_id, steps=False)  # 404 before streaming

    async def frames() -> AsyncIterator[ServerSentEvent]:
        async for event in execution_events(runtime.repo, runtime.bus, execution_id, start):
            yield ServerSentEvent(data=event_json(event), event=event.type, id=str(event.seq))

    return EventSourceResponse(
        frames(), ping=runtime.settings.sse_heartbeat_s, headers={"X-Accel-Buffering": "no"}
    )
