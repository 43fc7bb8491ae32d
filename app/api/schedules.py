"""`/schedules`: cron or interval schedules of registered workflows (admin scope, audited)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api.deps import NamespaceDep, RegistryDep, RepoDep, SettingsDep
from app.api.errors import error_responses
from app.api.schedule_models import (
    Schedule,
    ScheduleBody,
    ScheduleChange,
    ScheduleDeleted,
    SchedulePage,
)
from app.api.schemas import iso
from app.config import Settings
from app.engine.calendar import Calendar
from app.engine.state import utcnow
from app.errors import InputInvalid, RequestInvalid, ScheduleNotFound, WorkflowNotFound
from app.execution.scheduler import next_fires
from app.nodes.registry import NodeRegistry
from app.store.repository import Repository
from app.store.schedules import ScheduleRecord, ScheduleStore
from app.workflows.graph import compile_workflow
from app.workflows.problems import validate_input

router = APIRouter(tags=["schedules"])


def schedule_resource(record: ScheduleRecord, settings: Settings) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "workflow": record.workflow_name,
        "version": record.workflow_version,
        "cron": record.cron,
        "timezone": record.timezone if record.cron else None,
        "everyMs": record.every_ms,
        "input": record.input,
        "mode": record.mode,
        "priority": record.priority,
        "tags": record.tags,
        "overlap": record.overlap,
        "catchupWindowMs": record.catchup_window_ms,
        "jitterMs": record.jitter_ms,
        "paused": record.paused,
        "nextFires": [iso(at) for at in next_fires(record, settings.schedule_next_fires)],
        "fired": record.fired,
        "skipped": record.skipped,
        "lastSlot": iso(record.last_slot),
        "bufferedSlot": iso(record.buffered_slot),
        "lastError": record.last_error,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    }


async def check_target(
    repo: Repository,
    registry: NodeRegistry,
    settings: Settings,
    *,
    namespace: str,
    workflow: str,
    version: str | None,
    input: Any,
) -> None:
    """The workflow must be registered and take this input: a 404 or 422 now, not at each fire."""
    stored = await repo.get_workflow(workflow, version, namespace)
    if stored is None:
        raise WorkflowNotFound(
            f"no registered workflow '{workflow}'" + (f" version '{version}'" if version else "")
        )
    compiled = compile_workflow(stored.definition, registry, max_nodes=settings.max_nodes)
    problems = validate_input(compiled.definition.input_schema, input)
    if problems:
        raise InputInvalid(
            "the schedule's input does not match the workflow's inputSchema",
            [p.to_dict() for p in problems],
        )


async def _found(store: ScheduleStore, schedule_id: UUID, namespace: str) -> ScheduleRecord:
    record = await store.get(schedule_id, namespace)
    if record is None:  # another namespace's schedule is not found either
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return record


@router.post(
    "/schedules",
    status_code=201,
    summary="Create a schedule of a registered workflow",
    response_model=None,
    responses={201: {"model": Schedule}, **error_responses(404, 413, 415, 422)},
)
async def create_schedule(
    body: ScheduleBody,
    repo: RepoDep,
    registry: RegistryDep,
    settings: SettingsDep,
    namespace: NamespaceDep,
) -> JSONResponse:
    await check_target(
        repo,
        registry,
        settings,
        namespace=namespace,
        workflow=body.workflow,
        version=body.version,
        input=body.input,
    )
    calendar = Calendar(cron=body.cron, timezone=body.timezone or "UTC", every_ms=body.every_ms)
    values = {
        "id": uuid.uuid4(),
        "namespace": namespace,
        "workflow_name": body.workflow,
        "workflow_version": body.version,
        "cron": body.cron,
        "timezone": calendar.timezone,
        "every_ms": body.every_ms,
        "input": body.input,
        "mode": body.mode,
        "priority": body.priority,
        "tags": body.tags,
        "overlap": body.overlap,
        "catchup_window_ms": (
            settings.schedule_catchup_window_ms
            if body.catchup_window_ms is None
            else body.catchup_window_ms
        ),
        "jitter_ms": body.jitter_ms or 0,
        "paused": body.paused,
        "next_slot": calendar.next_after(utcnow()),
    }
    record = await ScheduleStore(repo.engine).create(values)
    return JSONResponse(
        schedule_resource(record, settings),
        status_code=201,
        headers={"Location": f"/schedules/{record.id}"},
    )


@router.get(
    "/schedules",
    summary="List schedules (by id; ?workflow= filters)",
    response_model=None,
    responses={200: {"model": SchedulePage}, **error_responses(422)},
)
async def list_schedules(
    repo: RepoDep,
    settings: SettingsDep,
    namespace: NamespaceDep,
    workflow: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    try:
        after = UUID(cursor) if cursor else None
    except ValueError:
        raise RequestInvalid("invalid cursor") from None
    items, more = await ScheduleStore(repo.engine).page(
        namespace, workflow=workflow, limit=limit, after=after
    )
    return {
        "items": [schedule_resource(r, settings) for r in items],
        "nextCursor": str(items[-1].id) if more and items else None,
    }


@router.get(
    "/schedules/{schedule_id}",
    summary="A schedule, with its next fires and its recent executions",
    response_model=None,
    responses={200: {"model": Schedule}, **error_responses(404, 422)},
)
async def get_schedule(
    schedule_id: UUID, repo: RepoDep, settings: SettingsDep, namespace: NamespaceDep
) -> dict[str, Any]:
    store = ScheduleStore(repo.engine)
    record = await _found(store, schedule_id, namespace)
    runs = await store.recent_runs(record.id)
    return {
        **schedule_resource(record, settings),
        "recentExecutions": [
            {"executionId": str(r.id), "slot": iso(r.schedule_slot), "status": r.status}
            for r in runs
        ],
    }


@router.patch(
    "/schedules/{schedule_id}",
    summary="Change a schedule: pause or resume it, or change what and when it runs",
    response_model=None,
    responses={200: {"model": Schedule}, **error_responses(404, 413, 415, 422)},
)
async def update_schedule(
    schedule_id: UUID,
    body: ScheduleChange,
    repo: RepoDep,
    registry: RegistryDep,
    settings: SettingsDep,
    namespace: NamespaceDep,
) -> dict[str, Any]:
    store = ScheduleStore(repo.engine)
    record = await _found(store, schedule_id, namespace)
    values = _changes(record, body)
    if {"workflow_version", "input"} & values.keys():
        await check_target(
            repo,
            registry,
            settings,
            namespace=namespace,
            workflow=record.workflow_name,
            version=values.get("workflow_version", record.workflow_version),
            input=values.get("input", record.input),
        )
    updated = await store.update(record.id, namespace, values) if values else record
    if updated is None:  # deleted meanwhile
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return schedule_resource(updated, settings)


def _changes(record: ScheduleRecord, body: ScheduleChange) -> dict[str, Any]:
    """The columns a PATCH sets; a new calendar or a resume starts again from now."""
    given = body.model_fields_set
    names = {
        "version": "workflow_version",
        "input": "input",
        "mode": "mode",
        "priority": "priority",
        "tags": "tags",
        "overlap": "overlap",
        "catchup_window_ms": "catchup_window_ms",
        "jitter_ms": "jitter_ms",
        "paused": "paused",
    }
    values: dict[str, Any] = {}
    for field, column in names.items():
        value = getattr(body, field)
        if field in given and (value is not None or field in ("version", "input")):
            values[column] = value
    if "input" in values and values["input"] is None:
        values["input"] = {}
    cron, every_ms, timezone = record.cron, record.every_ms, record.timezone
    if body.cron is not None:
        cron, every_ms = body.cron, None
    if body.every_ms is not None:
        cron, every_ms, timezone = None, body.every_ms, "UTC"
    if body.timezone is not None:
        if cron is None:
            raise RequestInvalid(
                "'timezone' applies to 'cron' only",
                [_detail("timezone", "timezone_without_cron", "this schedule has no cron")],
            )
        timezone = body.timezone
    calendar_changed = (cron, every_ms, timezone) != (record.cron, record.every_ms, record.timezone)
    resumed = values.get("paused") is False and record.paused
    if calendar_changed:
        values.update(cron=cron, every_ms=every_ms, timezone=timezone)
    if calendar_changed or resumed:  # a slot held or missed meanwhile is not run late
        calendar = Calendar(cron=cron, timezone=timezone, every_ms=every_ms)
        values.update(next_slot=calendar.next_after(utcnow()), buffered_slot=None)
    return values


def _detail(field: str, code: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", field], "field": field, "code": code, "message": message}


@router.delete(
    "/schedules/{schedule_id}",
    summary="Delete a schedule (its executions stay, each with its schedule id and slot)",
    response_model=None,
    responses={200: {"model": ScheduleDeleted}, **error_responses(404, 422)},
)
async def delete_schedule(
    schedule_id: UUID, repo: RepoDep, namespace: NamespaceDep
) -> dict[str, Any]:
    if not await ScheduleStore(repo.engine).delete(schedule_id, namespace):
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return {"id": str(schedule_id), "deleted": True}
