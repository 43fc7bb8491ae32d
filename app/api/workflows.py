"""The versioned workflow registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import RepoDep, RuntimeDep
from app.api.schemas import workflow_resource
from app.errors import RequestInvalid, WorkflowNotFound, WorkflowVersionExists
from app.workflows.graph import compile_workflow

router = APIRouter(tags=["workflows"])


@router.post("/workflows", status_code=201, summary="Register a workflow version")
async def register_workflow(definition: dict[str, Any], runtime: RuntimeDep) -> JSONResponse:
    compiled = compile_workflow(definition, runtime.registry, max_nodes=runtime.settings.max_nodes)
    name, version = compiled.definition.name, compiled.definition.version
    if not version:
        raise RequestInvalid("a registered workflow needs a 'version'")
    stored = compiled.definition.model_dump(by_alias=True, exclude_none=True)
    record = await runtime.repo.create_workflow(name, version, stored)
    if record is None:
        raise WorkflowVersionExists(f"workflow '{name}' version '{version}' already exists")
    return JSONResponse(workflow_resource(record), status_code=201)


@router.get("/workflows", summary="List registered workflows (every version)")
async def list_workflows(repo: RepoDep) -> dict[str, Any]:
    return {"items": [workflow_resource(r) for r in await repo.list_workflows()]}


@router.get("/workflows/{name}", summary="A registered workflow: newest, or ?version=")
async def get_workflow(name: str, repo: RepoDep, version: str | None = None) -> dict[str, Any]:
    record = await repo.get_workflow(name, version)
    if record is None:
        raise WorkflowNotFound(f"no registered workflow '{name}'")
    versions = [r.version for r in await repo.list_workflows(name)]
    return {**workflow_resource(record), "versions": versions}
