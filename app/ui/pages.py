"""The dashboard's pages and fragments: each reads what the JSON API serves, as the API does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app.api.deps import (
    HeartbeatsDep,
    QueueDep,
    RegistryDep,
    RepoDep,
    SettingsDep,
    get_namespace,
)
from app.api.queue import queue_overview
from app.api.schemas import child_refs, execution_resource, workflow_resource
from app.engine.status import Status
from app.errors import RequestInvalid, WorkflowNotFound
from app.execution.queue import ExecutionQueue
from app.store.composition import CompositionStore
from app.store.records import ExecutionRecord
from app.store.repository import Repository
from app.ui import timeline, views
from app.ui.forms import schema_fields

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(
    controls=views.CONTROLS, statuses=views.STATUSES, outline_above=views.OUTLINE_ABOVE
)
templates.env.filters.update(
    pretty=views.pretty,
    highlighted=views.highlighted,
    duration=views.duration_text,
    short_time=views.short_time,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
root = APIRouter(include_in_schema=False)

PAGE = 50
Html = HTMLResponse


@root.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/")  # a temporary redirect (307)


def _list_query(
    status: Annotated[list[str] | None, Query()] = None,
    workflow: str = "",
    tag: str = "",
    mode: str = "",
    after: str = "",
    before: str = "",
    q: str = "",
) -> views.ListQuery:
    return views.ListQuery(status or [], workflow, tag, mode, after, before, q)


async def _rows(
    repo: RepoDep, query: views.ListQuery, cursor: str | None, namespace: str = "default"
) -> dict[str, Any]:
    try:
        flt = query.to_filter()
        flt.namespace = namespace
        records, next_cursor = await repo.list_executions(flt, limit=PAGE, cursor=cursor)
    except (views.FilterInvalid, RequestInvalid) as exc:  # a bad time or cursor
        return {"rows": [], "next_cursor": None, "problem": str(exc)}
    rows = [views.row(execution_resource(r, steps=False)) for r in records]
    return {"rows": rows, "next_cursor": next_cursor, "problem": None}


ListQueryDep = Annotated[views.ListQuery, Depends(_list_query)]


@router.get("/", response_class=Html)
async def executions_page(
    request: Request, repo: RepoDep, query: ListQueryDep, cursor: str | None = None
) -> HTMLResponse:
    listing = await _rows(repo, query, cursor, get_namespace(request))
    context = {"query": query, "cursor": cursor, **listing}
    return templates.TemplateResponse(request, "executions.html", context)


@router.get("/rows", response_class=Html)
async def execution_rows(request: Request, repo: RepoDep, query: ListQueryDep) -> HTMLResponse:
    """The first page of rows (the list refreshes it when the feed says something changed)."""
    listing = await _rows(repo, query, None, get_namespace(request))
    return templates.TemplateResponse(request, "_rows.html", {"query": query, **listing})


async def _execution(repo: Repository, queue: ExecutionQueue, execution_id: UUID) -> dict[str, Any]:
    """`GET /execution/{id}` as the API answers it, and the human input it waits for."""
    record = await repo.get_execution(execution_id)
    resource = execution_resource(record)
    children = await child_refs(CompositionStore(repo.engine), execution_id)
    if children:
        resource["children"] = children
    if record.status == Status.PENDING:
        resource["queuePosition"] = await queue.position(execution_id)
    return {
        "execution": resource,
        "definition": record.definition,
        "last_seq": record.last_seq,
        "waiting": _waiting(record),
    }


# The events that say who steered a run (the stream carries them as well).
CONTROL_EVENTS = ("execution.paused", "execution.resumed", "execution.cancelled")


async def _history(repo: Repository, execution_id: UUID) -> list[dict[str, Any]]:
    """Who did what: the control events, oldest first (`requestedBy` where the event has it:
    a stop applied by the runner itself does not say who asked)."""
    events = await repo.events_of_types(execution_id, CONTROL_EVENTS)
    return [{"type": e.type, "at": e.created_at.isoformat()[:19], **e.data} for e in events]


async def _timeline(repo: Repository, execution_id: UUID, context: dict[str, Any]) -> Any:
    resource = context["execution"]
    types = {str(n.get("id")): str(n.get("type")) for n in context["definition"].get("nodes", [])}
    tries = None
    if any((s.get("attempt") or 0) > 1 for s in resource["steps"]):
        events = await repo.events_of_types(execution_id, timeline.ATTEMPT_EVENTS, 5000)
        tries = timeline.attempts(events)
    return timeline.gantt(resource, types, tries)


def _waiting(record: ExecutionRecord) -> dict[str, Any] | None:
    """The human-input step this execution waits on, with its prompt and form fields."""
    if record.status != Status.WAITING:
        return None
    for step in record.steps:
        if step.status == "waiting" and step.state.get("waitReason") == "human_input":
            data = step.state.get("waitData") or {}
            schema = data.get("schema")
            return {
                "nodeId": step.key,
                "prompt": data.get("prompt"),
                "schema": schema,
                "fields": schema_fields(schema),
            }
    return None


@router.get("/executions/{execution_id}", response_class=Html)
async def execution_page(
    request: Request,
    execution_id: UUID,
    repo: RepoDep,
    queue: QueueDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> Html:
    context = await _execution(repo, queue, execution_id)
    nodes, edges = views.graph(context["definition"], registry, settings.max_nodes)
    statuses = views.node_status(context["execution"])
    for node in nodes:
        step = statuses.get(node["id"]) or {}
        node["status"] = step.get("status", "pending")
        node["attempt"] = step.get("attempt", 0)
        node["duration"] = views.duration_text(step.get("durationMs"))
    context.update(
        nodes=nodes,
        edges=edges,
        history=await _history(repo, execution_id),
        gantt=await _timeline(repo, execution_id, context),
    )
    return templates.TemplateResponse(request, "execution.html", context)


@router.get("/executions/{execution_id}/part/{part}", response_class=Html)
async def execution_part(
    request: Request,
    execution_id: UUID,
    part: Literal["summary", "timeline", "input"],
    repo: RepoDep,
    queue: QueueDep,
) -> Html:
    """A live region of the execution page, re-read after the stream reported a change."""
    context = await _execution(repo, queue, execution_id)
    if part == "summary":
        context["history"] = await _history(repo, execution_id)
    elif part == "timeline":
        context["gantt"] = await _timeline(repo, execution_id, context)
    return templates.TemplateResponse(request, f"_{part}.html", context)


@router.get("/executions/{execution_id}/steps/{node_id}", response_class=Html)
async def step_panel(
    request: Request, execution_id: UUID, node_id: str, repo: RepoDep, queue: QueueDep
) -> Html:
    context = await _execution(repo, queue, execution_id)
    steps = [s for s in context["execution"]["steps"] if s["nodeId"] == node_id]
    listed = context["definition"].get("nodes", [])
    node: dict[str, Any] = next((n for n in listed if n.get("id") == node_id), {})
    events = await repo.events_after(execution_id, 0, 5000)
    attempts = [
        {"type": e.type, "at": e.created_at.isoformat()[:23], **e.data}
        for e in events
        if e.data.get("nodeId") == node_id and e.type.startswith("step.")
    ]
    context.update(node_id=node_id, node=node, steps=steps, attempts=attempts)
    return templates.TemplateResponse(request, "_step.html", context)


@router.get("/workflows", response_class=Html)
async def workflows_page(request: Request, repo: RepoDep) -> Html:
    named: dict[str, list[dict[str, Any]]] = {}
    for record in await repo.list_workflows(namespace=get_namespace(request)):
        named.setdefault(record.name, []).append(workflow_resource(record))
    return templates.TemplateResponse(request, "workflows.html", {"workflows": named})


@router.get("/workflows/{name}", response_class=Html)
async def workflow_page(
    request: Request,
    name: str,
    repo: RepoDep,
    version: str | None = None,
    compare: str | None = None,
) -> Html:
    namespace = get_namespace(request)
    record = await repo.get_workflow(name, version, namespace)
    if record is None:
        raise WorkflowNotFound(f"no registered workflow '{name}'")
    versions = [workflow_resource(r) for r in await repo.list_workflows(name, namespace)]
    other = await repo.get_workflow(name, compare, namespace) if compare else None
    diff = views.diff_lines(other.definition, record.definition) if other else None
    flt = views.ListQuery([], workflow=name).to_filter()
    flt.namespace = namespace
    records, _ = await repo.list_executions(flt, limit=100, cursor=None)
    recent = [execution_resource(r, steps=False) for r in records]
    context = {
        "workflow": workflow_resource(record),
        "versions": versions,
        "compare": compare,
        "diff": diff,
        "fields": schema_fields(record.definition.get("inputSchema")),
        "schema": record.definition.get("inputSchema"),
        "recent": [views.row(r) for r in recent[:20]],
        "stats": views.outcome_stats(recent),
        **await views.workflow_analytics(repo.engine, name),
    }
    return templates.TemplateResponse(request, "workflow.html", context)


@router.get("/queue", response_class=Html)
async def queue_page(
    request: Request,
    repo: RepoDep,
    queue: QueueDep,
    heartbeats: HeartbeatsDep,
    part: bool = False,
) -> Html:
    overview = await queue_overview(repo, queue, heartbeats, get_namespace(request))
    rates = overview["throughput"]["perSecond"]
    context = {"queue": overview, "peak": max([*rates, 0.1])}
    return templates.TemplateResponse(request, "_queue.html" if part else "queue.html", context)
