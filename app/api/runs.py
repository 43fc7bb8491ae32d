"""Running workflows: `POST /workflow/run` and `POST /workflows/{name}/run`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from app.api.deps import ManagerDep, NamespaceDep
from app.api.errors import error_responses
from app.api.resources import Accepted, Execution
from app.api.schemas import (
    NamePath,
    RegisteredRunBody,
    RunBody,
    RunOptions,
    accepted_resource,
    execution_resource,
)
from app.execution.manager import ExecutionManager, RunRequest

router = APIRouter(tags=["runs"])

RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Execution, "description": "finished (immediate): the execution"},
    202: {"model": Accepted, "description": "queued, or promoted to the queue"},
    **error_responses(404, 409, 413, 415, 422),
}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


async def _submit(manager: ExecutionManager, request: RunRequest) -> JSONResponse:
    submission = await manager.submit(request)
    record = submission.started.record
    complexity = submission.complexity.to_dict()
    if submission.started.finished:
        return JSONResponse(execution_resource(record), status_code=200)
    return JSONResponse(accepted_resource(record, complexity), status_code=202)


def _request(options: RunOptions, key: str | None, **fields: Any) -> RunRequest:
    return RunRequest(
        timeout_ms=options.timeout,
        priority=options.priority,
        tags=options.tags,
        idempotency_key=key,
        **fields,
    )


@router.post(
    "/workflow/run",
    summary="Run a workflow",
    response_model=None,
    responses=RUN_RESPONSES,
)
async def run_workflow(
    body: RunBody,
    manager: ManagerDep,
    namespace: NamespaceDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _submit(
        manager,
        _request(
            body.options,
            idempotency_key,
            workflow=body.workflow,
            workflow_id=body.workflow_id,
            version=body.version,
            input=body.input,
            mode=body.mode,
            metadata=body.metadata,
            namespace=namespace,
        ),
    )


@router.post(
    "/workflows/{name}/run",
    summary="Run a registered workflow",
    response_model=None,
    responses=RUN_RESPONSES,
)
async def run_registered(
    name: NamePath,
    body: RegisteredRunBody,
    manager: ManagerDep,
    namespace: NamespaceDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _submit(
        manager,
        _request(
            body.options,
            idempotency_key,
            workflow_id=name,
            version=body.version,
            input=body.input,
            mode=body.mode,
            metadata=body.metadata,
            namespace=namespace,
        ),
    )
