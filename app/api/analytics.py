"""Analytics: per workflow and version over a time range, and a workflow's time series."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from app.api.deps import RepoDep
from app.api.errors import error_responses
from app.api.executions import Timestamp
from app.api.resources import Resource
from app.api.schemas import NO_NUL, iso
from app.engine.state import utcnow
from app.errors import RequestInvalid
from app.store.analytics import AnalyticsStore, Window

router = APIRouter(tags=["analytics"])

DEFAULT_RANGE = timedelta(days=7)
MAX_BUCKETS = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Durations(Resource):
    p50: float | None
    p95: float | None
    p99: float | None


class WorkflowStats(Resource):
    workflow: str
    version: str | None
    counts: dict[str, int] = Field(description="executions created in the range, by status")
    success_rate: float | None = Field(
        alias="successRate", description="completed / (completed + failed + cancelled)"
    )
    duration_ms: Durations = Field(alias="durationMs", description="of the runs that ended")
    queue_wait_ms: dict[str, float | None] = Field(
        alias="queueWaitMs", description="`mean`: from creation to the first start"
    )
    retries_per_run: float | None = Field(
        alias="retriesPerRun", description="step retries per run that ended"
    )
    top_errors: list[dict[str, Any]] = Field(alias="topErrors", description="`{code, count}`")


class WorkflowStatsPage(Resource):
    since: str
    until: str
    items: list[WorkflowStats]


class TimeseriesPoint(Resource):
    start: str
    counts: dict[str, int]
    success_rate: float | None = Field(alias="successRate")
    duration_ms: Durations = Field(alias="durationMs")


class Timeseries(Resource):
    workflow: str
    bucket: str
    since: str
    until: str
    points: list[TimeseriesPoint] = Field(description="buckets with executions, oldest first")


def _window(since: Any, until: Any, workflow: str | None = None) -> Window:
    until = until or utcnow()
    since = since or until - DEFAULT_RANGE
    if since.tzinfo is None or until.tzinfo is None:
        raise RequestInvalid("from and to need a time zone, e.g. 2026-12-01T12:00:00Z")
    if since > until:
        raise RequestInvalid("from must not be after to")
    return Window(since, until, workflow)


From = Annotated[
    Timestamp | None, Query(alias="from", description="created at or after (default: to - 7 d)")
]
To = Annotated[Timestamp | None, Query(alias="to", description="created before (default: now)")]


@router.get(
    "/analytics/workflows",
    summary="Per workflow and version: counts, success rate, durations, waits, errors",
    response_model=None,
    responses={200: {"model": WorkflowStatsPage}, **error_responses(422)},
)
async def workflow_analytics(
    repo: RepoDep,
    since: From = None,
    until: To = None,
    workflow: Annotated[str | None, Query(pattern=NO_NUL, max_length=200)] = None,
) -> dict[str, Any]:
    window = _window(since, until, workflow)
    items = await AnalyticsStore(repo.engine).workflow_stats(window)
    return {"since": iso(window.since), "until": iso(window.until), "items": items}


@router.get(
    "/analytics/workflows/{name}/timeseries",
    summary="A workflow's executions per time bucket",
    response_model=None,
    responses={200: {"model": Timeseries}, **error_responses(422)},
)
async def workflow_timeseries(
    repo: RepoDep,
    name: Annotated[str, Path(pattern=NO_NUL, max_length=200)],
    bucket: Annotated[
        str, Query(pattern=r"^[0-9]{1,6}[smhd]$", description="e.g. 5m, 1h, 1d")
    ] = "1h",
    since: From = None,
    until: To = None,
) -> dict[str, Any]:
    window = _window(since, until, name)
    match = re.fullmatch(r"([0-9]+)([smhd])", bucket)
    assert match is not None  # the pattern above
    bucket_s = int(match[1]) * _UNITS[match[2]]
    if bucket_s <= 0:
        raise RequestInvalid("bucket must be longer than 0")
    if (window.until - window.since).total_seconds() / bucket_s > MAX_BUCKETS:
        raise RequestInvalid(
            f"more than {MAX_BUCKETS} buckets of {bucket} in the range: widen the bucket"
        )
    points = await AnalyticsStore(repo.engine).workflow_timeseries(window, bucket_s)
    for point in points:
        point["start"] = iso(point["start"])
    return {
        "workflow": name,
        "bucket": bucket,
        "since": iso(window.since),
        "until": iso(window.until),
        "points": points,
    }
