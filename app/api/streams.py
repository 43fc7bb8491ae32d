"""Server-sent events: one execution's stream, and the global feed of all executions."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import BusDep, PrincipalDep, QueueDep, RepoDep, SettingsDep
from app.api.errors import error_responses
from app.auth.keys import DEFAULT_NAMESPACE, Principal
from app.errors import RequestInvalid
from app.events.bus import FEED, EventBus
from app.events.stream import execution_events
from app.events.wire import event_json
from app.execution.queue import ExecutionQueue
from app.metrics import STREAMS_OPEN
from app.store.namespaces import namespace_of
from app.store.records import EventRecord
from app.store.repository import Repository

router = APIRouter(tags=["streams"])

# While an execution waits in the queue, its stream says where it stands this often; the
# first time shortly after connecting, so a run that starts at once costs no lookup.
QUEUE_TICK_S = 2.0

_SSE = {
    "description": "server-sent events: `id: <seq>`, `event: <type>`, `data: <json>` frames",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {200: _SSE, **error_responses(404, 422)}
FEED_RESPONSES: dict[int | str, dict[str, Any]] = {200: _SSE, **error_responses()}
# A resume point is an event seq: a whole number.
# A header is never null: absent is the empty default.
LastEventId = Annotated[str, Header(alias="Last-Event-ID", pattern=r"^\s*[0-9]{1,18}\s*$")]
QUEUE_FIRST_S = 0.05


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    if last_event_id:
        if not last_event_id.strip().isdigit():
            raise RequestInvalid("Last-Event-ID must be an event seq (a whole number)")
        return int(last_event_id)
    return after or 0


def _frame(event: EventRecord) -> ServerSentEvent:
    return ServerSentEvent(data=event_json(event), event=event.type, id=str(event.seq))


@router.get(
    "/execution/{execution_id}/stream",
    summary="Stream an execution's events (SSE): stored ones after Last-Event-ID, then live",
    response_class=EventSourceResponse,
    responses={
        **STREAM_RESPONSES,
        204: {"description": "Resumed at or after the end of a finished execution"},
    },
)
async def stream_execution(
    execution_id: UUID,
    repo: RepoDep,
    bus: BusDep,
    queue: QueueDep,
    settings: SettingsDep,
    last_event_id: LastEventId = "",
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> Response:
    start = _resume_point(last_event_id, after)
    if await repo.ended_by(execution_id, start):  # 404 before streaming
        # Resumed at (or past) the end of a finished execution: nothing will follow. 204 is
        # SSE's "do not reconnect", so an EventSource or client stops instead of looping.
        return Response(status_code=204)
    return EventSourceResponse(
        _execution_frames(repo, bus, queue, execution_id, start),
        ping=settings.sse_heartbeat_s,
        headers={"X-Accel-Buffering": "no"},
    )


async def _execution_frames(
    repo: Repository, bus: EventBus, queue: ExecutionQueue, execution_id: UUID, start: int
) -> AsyncIterator[ServerSentEvent | bytes]:
    """The events, plus `queue` frames (no id, not stored) while the execution waits. Events
    at hand together go in one chunk (one write to the client, not one per event)."""
    loop = asyncio.get_running_loop()
    batches = execution_events(repo, bus, execution_id, start)
    # When to look up the queue position next; None while not queued.
    next_check: float | None = loop.time() + QUEUE_FIRST_S
    STREAMS_OPEN.inc()
    try:
        while True:
            upcoming = asyncio.ensure_future(anext(batches))
            try:
                while next_check is not None:
                    timeout = max(0.0, next_check - loop.time())
                    done, _ = await asyncio.wait({upcoming}, timeout=timeout)
                    if done:
                        break
                    position = await queue.position(execution_id)
                    if position is None:
                        next_check = None
                        break
                    next_check = loop.time() + QUEUE_TICK_S
                    yield ServerSentEvent(
                        data=json.dumps({"queuePosition": position}), event="queue"
                    )
                batch = await upcoming
            except StopAsyncIteration:
                return
            finally:
                if not upcoming.done():
                    upcoming.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await upcoming
            for event in batch:
                if event.type in _LEAVES_QUEUE:
                    next_check = None
                elif event.type in _ENTERS_QUEUE:
                    next_check = loop.time() + QUEUE_FIRST_S
            yield b"".join(_frame(event).encode() for event in batch)
    finally:
        STREAMS_OPEN.dec()
        await batches.aclose()


async def _in_namespace(
    repo: Repository, principal: Principal, execution_id: UUID, seen: dict[UUID, bool]
) -> bool:
    """The feed shows a key only its namespace's executions (looked up once per execution)."""
    if not principal.authenticated and principal.namespace == DEFAULT_NAMESPACE:
        return True  # auth off: one namespace in practice; no lookups
    if execution_id not in seen:
        if len(seen) > 10_000:
            seen.clear()
        found = await namespace_of(repo.engine, execution_id)
        seen[execution_id] = found == principal.namespace
    return seen[execution_id]


_LEAVES_QUEUE = frozenset({"execution.started", "execution.paused", "execution.waiting"})
_ENTERS_QUEUE = frozenset({"execution.promoted", "execution.resumed"})


@router.get(
    "/executions/stream",
    summary="The global feed (SSE): every execution's creation and status changes, live",
    response_class=EventSourceResponse,
    responses=FEED_RESPONSES,
)
async def stream_all(
    bus: BusDep, settings: SettingsDep, repo: RepoDep, principal: PrincipalDep
) -> EventSourceResponse:
    async def frames() -> AsyncIterator[ServerSentEvent]:
        STREAMS_OPEN.inc()
        seen: dict[UUID, bool] = {}  # execution -> in this namespace
        try:
            async with bus.subscribe(FEED) as live:
                while True:
                    event = await live.get()
                    if not await _in_namespace(repo, principal, event.execution_id, seen):
                        continue
                    # No id: the feed is live only (a dashboard lists executions first).
                    yield ServerSentEvent(data=event_json(event), event=event.type)
        finally:
            STREAMS_OPEN.dec()

    return EventSourceResponse(
        frames(), ping=settings.sse_heartbeat_s, headers={"X-Accel-Buffering": "no"}
    )
