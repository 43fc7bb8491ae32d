"""The dashboard's schedules: the list with next fires and pause/resume, and one schedule
with its recent executions (admin keys only, as `/schedules` is)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.deps import RepoDep, SettingsDep, get_namespace
from app.api.schedules import schedule_resource
from app.api.schemas import execution_resource
from app.errors import ScheduleNotFound
from app.store.schedules import ScheduleStore
from app.ui import views
from app.ui.pages import templates

router = APIRouter(prefix="/ui", include_in_schema=False)


def _when(resource: dict[str, Any]) -> str:
    if resource["cron"]:
        return f"cron {resource['cron']} ({resource['timezone']})"
    every = resource["everyMs"]
    return f"every {every // 1000} s" if every % 1000 == 0 else f"every {every} ms"


@router.get("/schedules", response_class=HTMLResponse)
async def schedules_page(request: Request, repo: RepoDep, settings: SettingsDep) -> HTMLResponse:
    store = ScheduleStore(repo.engine)
    records, _ = await store.page(get_namespace(request), workflow=None, limit=500, after=None)
    items = []
    for record in records:
        resource = schedule_resource(record, settings)
        recent = [execution_resource(r, steps=False) for r in await store.recent_runs(record.id, 5)]
        items.append({**resource, "when": _when(resource), "recent": recent})
    return templates.TemplateResponse(request, "schedules.html", {"items": items})


@router.get("/schedules/{schedule_id}", response_class=HTMLResponse)
async def schedule_page(
    request: Request, schedule_id: UUID, repo: RepoDep, settings: SettingsDep
) -> HTMLResponse:
    store = ScheduleStore(repo.engine)
    record = await store.get(schedule_id, get_namespace(request))
    if record is None:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    resource = schedule_resource(record, settings)
    rows = []
    for run in await store.recent_runs(record.id, 50):
        shown = execution_resource(run, steps=False)
        rows.append({**views.row(shown), "slot": shown["schedule"]["slot"]})
    context = {"s": {**resource, "when": _when(resource)}, "rows": rows}
    return templates.TemplateResponse(request, "schedule.html", context)
