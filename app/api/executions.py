"""Reading executions: one by id, and the filtered, paginated list."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from app.api.deps import NamespaceDep, QueueDep, RepoDep
from app.api.errors import error_responses
from app.api.resources import Execution, ExecutionPage
from app.api.schemas import NO_NUL, child_refs, execution_resource
from app.engine.status import Status
from app.store.composition import CompositionStore
from app.store.records import ExecutionFilter

router = APIRouter(tags=["executions"])

GET_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Execution},
    **error_responses(404, 422),
}


def _iso_only(value: Any) -> Any:
    # pydantic would read "0.5" as seconds since 1970; the documented format is ISO 8601.
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-12-01T12:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]

if TYPE_CHECKING:
    StatusName = str
else:  # the statuses as a Literal, so the OpenAPI schema lists them
    StatusName = Literal[tuple(str(s) for s in Status)]


@router.get(
    "/execution/{execution_id}",
    summary="Get an execution",
    response_model=None,
    responses=GET_RESPONSES,
)
async def get_execution(execution_id: UUID, repo: RepoDep, queue: QueueDep) -> dict[str, Any]:
    record = await repo.get_execution(execution_id)
    resource = execution_resource(record)
    children = await child_refs(CompositionStore(repo.engine), record.id)
    if children:  # absent otherwise, as in the answers of runs and control verbs
        resource["children"] = children
    if record.status == Status.PENDING:
        # 1 = the next to be picked up; null when its job is not in the queue right now.
        resource["queuePosition"] = await queue.position(execution_id)
    return resource


@router.get(
    "/executions",
    summary="List executions, newest first",
    response_model=None,
    responses={200: {"model": ExecutionPage}, **error_responses(422)},
)
async def list_executions(
    repo: RepoDep,
    namespace: NamespaceDep,
    status: Annotated[list[StatusName] | None, Query()] = None,
    workflow: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    mode: Literal["immediate", "queued"] | None = None,
    tag: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    created_after: Annotated[Timestamp | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[Timestamp | None, Query(alias="createdBefore")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="id prefix or part of the idempotency key")
    ] = None,
) -> dict[str, Any]:
    flt = ExecutionFilter(
        status=list(status) if status else None,
        workflow=workflow,
        mode=mode,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
        text=q or None,
        namespace=namespace,
    )
    records, next_cursor = await repo.list_executions(flt, limit=limit, cursor=cursor)
    return {
        "items": [execution_resource(r, steps=False) for r in records],
        "nextCursor": next_cursor,
    }
