"""`POST /events`: send an event to the runs waiting on it and the workflows it triggers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from app.api.deps import NamespaceDep
from app.api.errors import error_responses
from app.api.schemas import NO_NUL, JSONBody
from app.execution.event_intake import EventIntake
from app.workflows.model import CamelModel

router = APIRouter(tags=["events"])

EVENT_NAME = r"^[A-Za-z0-9_.:/-]{1,200}$"


class EventBody(JSONBody):
    """An event: `wait.event` steps with this `name` see it, `on: {event: name}` workflows
    start. The same `id` again changes nothing and gets the same answer."""

    name: str = Field(pattern=EVENT_NAME, description="letters, digits and _ . : / -")
    data: Any = Field(default=None, description="any JSON; runs read it as `event.data`")
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="idempotency: one event per id",
    )


class TriggeredRun(CamelModel):
    workflow: str
    version: str | None
    execution_id: str = Field(alias="executionId")


class TriggerError(CamelModel):
    workflow: str
    code: str
    message: str


class EventAnswer(CamelModel):
    """The event as stored (the first one, for a repeated id) and the runs it started."""

    id: str
    name: str
    data: Any = None
    received_at: str = Field(alias="receivedAt")
    runs: list[TriggeredRun]
    errors: list[TriggerError] = Field(description="triggers that could not start a run")


def get_intake(request: Request) -> EventIntake:
    intake: EventIntake = request.app.state.runtime.events
    return intake


IntakeDep = Annotated[EventIntake, Depends(get_intake)]


@router.post(
    "/events",
    summary="Send an event",
    response_model=None,
    responses={200: {"model": EventAnswer}, **error_responses(401, 403, 413, 422)},
)
async def send_event(body: EventBody, intake: IntakeDep, namespace: NamespaceDep) -> dict[str, Any]:
    answer = await intake.send(namespace, body.name, body.data, body.id)
    return answer.to_dict()
