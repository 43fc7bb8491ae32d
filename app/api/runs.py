"""Running workflows: `POST /workflow/run` and `POST /workflows/{name}/run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from app.api.bulk import BulkResults, BulkRunBody, parse_item, results_resource
from app.api.deps import BusDep, ManagerDep, NamespaceDep, QueueDep
from app.api.errors import error_responses
from app.api.resources import Accepted, Execution
from app.api.schemas import (
    NamePath,
    RegisteredRunBody,
    RunBody,
    accepted_resource,
    execution_resource,
)
from app.execution.bulk import BulkSubmitter
from app.execution.manager import ExecutionManager, RunRequest

router = APIRouter(tags=["runs"])

RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Execution, "description": "finished (immediate): the execution"},
    202: {"model": Accepted, "description": "queued, or promoted to the queue"},
    **error_responses(404, 409, 413, 415, 422),
}

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


async def _submit(manager: ExecutionManager, request: RunRequest) -> JSONResponse:
    submission = await manager.submit(request)
    record = submission.started.record
    complexity = submission.complexity.to_dict()
    if submission.started.finished:
        return JSONResponse(execution_resource(record), status_code=200)
    return JSONResponse(accepted_resource(record, complexity), status_code=202)


def _request(body: RegisteredRunBody, key: str | None, namespace: str, **fields: Any) -> RunRequest:
    """What both run routes submit: the body's shared fields, plus the route's own."""
    return RunRequest(
        timeout_ms=body.options.timeout,
        priority=body.options.priority,
        tags=body.options.tags,
        idempotency_key=key,
        version=body.version,
        input=body.input,
        mode=body.mode,
        metadata=body.metadata,
        namespace=namespace,
        **fields,
    )


def _run_route(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """Both run routes answer alike: 200 with the execution, or 202 when it is queued."""
    return router.post(path, summary=summary, response_model=None, responses=RUN_RESPONSES)


@_run_route("/workflow/run", "Run a workflow")
async def run_workflow(
    body: RunBody,
    manager: ManagerDep,
    namespace: NamespaceDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    fields = {"workflow": body.workflow, "workflow_id": body.workflow_id}
    return await _submit(manager, _request(body, idempotency_key, namespace, **fields))


@_run_route("/workflows/{name}/run", "Run a registered workflow")
async def run_registered(
    name: NamePath,
    body: RegisteredRunBody,
    manager: ManagerDep,
    namespace: NamespaceDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _submit(manager, _request(body, idempotency_key, namespace, workflow_id=name))


@router.post(
    "/workflow/runs",
    summary="Run many workflows (up to 1,000 queued runs, one commit)",
    response_model=BulkResults,
    responses=error_responses(413, 415, 422),
)
async def run_many(
    body: BulkRunBody,
    manager: ManagerDep,
    queue: QueueDep,
    bus: BusDep,
    namespace: NamespaceDep,
) -> JSONResponse:
    """Each run is validated on its own and answered on its own (`results[i].httpStatus`)."""
    requests = [parse_item(i, raw, namespace) for i, raw in enumerate(body.runs)]
    outcomes = await BulkSubmitter(manager, queue, bus).submit(requests)
    return JSONResponse(results_resource(outcomes), status_code=200)
