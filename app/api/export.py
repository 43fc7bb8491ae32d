"""`GET /execution/{id}/export`: an execution's whole history as one JSON document."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from app.api.deps import RepoDep
from app.api.errors import error_responses
from app.api.resources import Execution, Resource
from app.api.schemas import execution_resource, iso
from app.engine.state import utcnow
from app.store.history import HistoryStore

router = APIRouter(tags=["executions"])

EXPORT_FORMAT = 1


class ExportedEvent(Resource):
    seq: int
    type: str
    at: str
    data: dict[str, Any]


class ExecutionExport(Resource):
    format: int = Field(description="the document's format version")
    exported_at: str = Field(alias="exportedAt")
    execution: Execution
    definition: dict[str, Any] = Field(description="the workflow as it ran (the snapshot)")
    events: list[ExportedEvent] = Field(description="every stored event, in order")


@router.get(
    "/execution/{execution_id}/export",
    summary="Export an execution: the resource, its definition and every event",
    response_model=None,
    responses={200: {"model": ExecutionExport}, **error_responses(404, 422)},
)
async def export_execution(execution_id: UUID, repo: RepoDep) -> dict[str, Any]:
    record = await repo.get_execution(execution_id)
    events = await HistoryStore(repo.engine).all_events(execution_id)
    for event in events:
        event["at"] = iso(event["at"])
    return {
        "format": EXPORT_FORMAT,
        "exportedAt": iso(utcnow()),
        "execution": execution_resource(record),
        "definition": record.definition,
        "events": events,
    }
