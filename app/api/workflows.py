"""The versioned workflow registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api.deps import ManagerDep, NamespaceDep, RegistryDep, RepoDep, SettingsDep
from app.api.errors import error_responses
from app.api.resources import (
    RegisteredWorkflow,
    WorkflowDeleted,
    WorkflowPage,
    WorkflowVersions,
    WorkflowWithVersions,
)
from app.api.schemas import NO_NUL, NamePath, iso, workflow_resource
from app.errors import RequestInvalid, WorkflowNotFound, WorkflowVersionExists
from app.execution.autostart import auto_start, check_auto_start
from app.jsonvalue import NotJSON, normalise, path_text
from app.workflows.graph import compile_workflow

router = APIRouter(tags=["workflows"])

Version = Annotated[
    str | None, Query(max_length=100, pattern=NO_NUL, description="a version (default: all)")
]


@router.post(
    "/workflows",
    status_code=201,
    summary="Register a workflow version",
    response_model=None,
    responses={201: {"model": RegisteredWorkflow}, **error_responses(409, 413, 415, 422)},
)
async def register_workflow(
    definition: dict[str, Any],
    repo: RepoDep,
    registry: RegistryDep,
    settings: SettingsDep,
    namespace: NamespaceDep,
    manager: ManagerDep,
) -> JSONResponse:
    try:
        definition = normalise(definition, max_depth=settings.max_json_depth)
    except NotJSON as exc:
        path = ["body", *exc.path]
        detail = {"loc": path, "field": path_text(exc.path), "code": "not_json"}
        raise RequestInvalid(
            f"request body is not storable JSON: {exc}", [{**detail, "message": str(exc)}]
        ) from None
    compiled = compile_workflow(definition, registry, max_nodes=settings.max_nodes)
    name, version = compiled.definition.name, compiled.definition.version
    if not version:
        raise RequestInvalid("a registered workflow needs a 'version'")
    check_auto_start(compiled)
    stored = compiled.definition.model_dump(by_alias=True, exclude_none=True)
    record = await repo.create_workflow(name, version, stored, namespace)
    if record is None:
        raise WorkflowVersionExists(f"workflow '{name}' version '{version}' already exists")
    answer = workflow_resource(record)
    if compiled.definition.auto_start:
        answer["autoStart"] = await auto_start(manager, namespace, name, version)
    return JSONResponse(answer, status_code=201)


@router.get(
    "/workflows",
    summary="List registered workflows by name, each with its latest version",
    response_model=None,
    responses={200: {"model": WorkflowPage}, **error_responses(422)},
)
async def list_workflows(
    repo: RepoDep,
    namespace: NamespaceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`nextCursor` of the previous page")
    ] = None,
) -> dict[str, Any]:
    # The cursor is the last name of the page before (names are unique and ordered).
    items, more = await repo.list_workflow_names(
        limit=limit, after=cursor or None, namespace=namespace
    )
    return {
        "items": [
            {
                "name": record.name,
                "latestVersion": record.version,
                "versionCount": count,
                "updatedAt": iso(record.created_at),
            }
            for record, count in items
        ],
        "nextCursor": items[-1][0].name if more and items else None,
    }


@router.get(
    "/workflows/{name}",
    summary="A registered workflow: newest, or ?version=",
    response_model=None,
    responses={200: {"model": WorkflowWithVersions}, **error_responses(404, 422)},
)
async def get_workflow(
    name: NamePath, repo: RepoDep, namespace: NamespaceDep, version: Version = None
) -> dict[str, Any]:
    record = await repo.get_workflow(name, version, namespace)
    if record is None:
        raise WorkflowNotFound(_missing(name, version))
    versions = [r.version for r in await repo.list_workflows(name, namespace)]
    return {**workflow_resource(record), "versions": versions}


@router.get(
    "/workflows/{name}/versions",
    summary="Every registered version of a workflow, newest first",
    response_model=None,
    responses={200: {"model": WorkflowVersions}, **error_responses(404, 422)},
)
async def list_versions(name: NamePath, repo: RepoDep, namespace: NamespaceDep) -> dict[str, Any]:
    records = await repo.list_workflows(name, namespace)
    if not records:
        raise WorkflowNotFound(_missing(name, None))
    return {
        "name": name,
        "items": [
            {"id": str(r.id), "version": r.version, "createdAt": iso(r.created_at)} for r in records
        ],
    }


@router.delete(
    "/workflows/{name}",
    summary="Unregister one version (?version=) or every version; executions keep their copy",
    response_model=None,
    responses={200: {"model": WorkflowDeleted}, **error_responses(404, 422)},
)
async def delete_workflow(
    name: NamePath, repo: RepoDep, namespace: NamespaceDep, version: Version = None
) -> dict[str, Any]:
    deleted = await repo.delete_workflow(name, version, namespace)
    if not deleted:
        raise WorkflowNotFound(_missing(name, version))
    return {"name": name, "deletedVersions": deleted}


def _missing(name: str, version: str | None) -> str:
    if version is None or version == "latest":
        return f"no registered workflow '{name}'"
    return f"no version '{version}' of registered workflow '{name}'"
