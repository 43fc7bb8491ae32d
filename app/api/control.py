"""Control verbs: pause, resume, cancel (also DELETE), retry, human input."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from app.api.deps import ActorDep, ControlDep
from app.api.errors import error_responses
from app.api.resources import ControlAnswer
from app.api.schemas import JSONBody, execution_resource
from app.execution.steering import ControlResult

router = APIRouter(tags=["control"])

VERB: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"model": ControlAnswer}, **error_responses(404, 409, 422)},
}
WITH_BODY: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"model": ControlAnswer}, **error_responses(404, 409, 413, 415, 422)},
}

Actor = ActorDep


class RetryBody(JSONBody):
    from_: Literal["failed", "start"] = Field(default="failed", alias="from")
    version: str | None = Field(default=None, max_length=100, description='"latest" or a version')


class InputBody(JSONBody):
    node_id: str = Field(min_length=1, max_length=200)
    data: Any = None


def _answer(result: ControlResult) -> dict[str, Any]:
    return {**execution_resource(result.record), "changed": result.changed}


def _who(actor: str | None) -> str:
    return actor or "api"  # the principal's actor (app.api.deps.get_actor)


@router.post("/execution/{execution_id}/cancel", summary="Cancel an execution", **VERB)
async def cancel(execution_id: UUID, control: ControlDep, actor: Actor = "api") -> dict[str, Any]:
    return _answer(await control.cancel(execution_id, _who(actor)))


@router.delete("/execution/{execution_id}", summary="Cancel an execution (seed verb)", **VERB)
async def delete(execution_id: UUID, control: ControlDep, actor: Actor = "api") -> dict[str, Any]:
    return _answer(await control.cancel(execution_id, _who(actor)))


@router.post("/execution/{execution_id}/pause", summary="Pause: no new steps start", **VERB)
async def pause(
    execution_id: UUID,
    control: ControlDep,
    abort: Annotated[
        bool, Query(description="cancel running steps; they re-run on resume")
    ] = False,
    actor: Actor = "api",
) -> dict[str, Any]:
    return _answer(await control.pause(execution_id, _who(actor), abort=abort))


@router.post("/execution/{execution_id}/resume", summary="Resume a paused execution", **VERB)
async def resume(execution_id: UUID, control: ControlDep, actor: Actor = "api") -> dict[str, Any]:
    return _answer(await control.resume(execution_id, _who(actor)))


@router.post(
    "/execution/{execution_id}/retry", summary="Retry a failed or cancelled execution", **WITH_BODY
)
async def retry(
    execution_id: UUID, control: ControlDep, body: RetryBody | None = None, actor: Actor = "api"
) -> dict[str, Any]:
    body = body or RetryBody()
    result = await control.retry(execution_id, _who(actor), from_=body.from_, version=body.version)
    return _answer(result)


@router.post(
    "/execution/{execution_id}/input",
    summary="Give a waiting human.input step its data",
    **WITH_BODY,
)
async def give_input(
    execution_id: UUID, body: InputBody, control: ControlDep, actor: Actor = "api"
) -> dict[str, Any]:
    return _answer(await control.deliver_input(execution_id, body.node_id, body.data, _who(actor)))
