"""The seed client's paths, answering exactly like the main ones."""

from __future__ import annotations

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from app.api import control, executions, runs, streams

router = APIRouter(prefix="/api/workflow", tags=["seed-compatible"])

router.add_api_route(
    "/run",
    runs.run_workflow,
    methods=["POST"],
    summary="Run (seed path)",
    response_model=None,
    responses=runs.RUN_RESPONSES,
)
router.add_api_route(
    "/execution/{execution_id}",
    executions.get_execution,
    methods=["GET"],
    summary="Get an execution (seed path)",
    response_model=None,
    responses=executions.GET_RESPONSES,
)
router.add_api_route(
    "/execution/{execution_id}/stream",
    streams.stream_execution,
    methods=["GET"],
    response_class=EventSourceResponse,
    summary="Stream an execution's events (seed path)",
    responses=streams.STREAM_RESPONSES,
)
for verb in ("pause", "resume"):
    router.add_api_route(
        f"/execution/{{execution_id}}/{verb}",
        getattr(control, verb),
        methods=["POST"],
        summary=f"{verb.capitalize()} (seed path)",
        **control.VERB,
    )
router.add_api_route(
    "/execution/{execution_id}",
    control.delete,
    methods=["DELETE"],
    summary="Cancel (seed path)",
    **control.VERB,
)
