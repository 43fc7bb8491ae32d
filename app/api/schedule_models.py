"""The `/schedules` bodies and answers (camelCase JSON)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from app.api.resources import Resource
from app.api.schemas import JSONBody
from app.engine.calendar import CalendarInvalid, check_cron, check_timezone
from app.store.records import MAX_PRIORITY

Overlap = Literal["skip", "buffer_one", "allow_all", "cancel_previous"]
Mode = Literal["auto", "immediate", "queued"]
DAY_MS = 86_400_000


class ScheduleChange(JSONBody):
    """`PATCH /schedules/{id}`: the fields to change (a new cron or everyMs replaces the
    other; `paused: false` resumes from now, missed slots are not caught up)."""

    version: str | None = Field(default=None, max_length=100, description="null: the latest")
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    every_ms: int | None = Field(default=None, ge=1000, le=366 * DAY_MS, description="ms")
    input: Any = None
    mode: Mode | None = None
    priority: int | None = Field(default=None, ge=0, le=MAX_PRIORITY)
    tags: list[str] | None = Field(default=None, max_length=50)
    overlap: Overlap | None = None
    catchup_window_ms: int | None = Field(default=None, ge=0, le=366 * DAY_MS)
    jitter_ms: int | None = Field(default=None, ge=0, le=DAY_MS)
    paused: bool | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_cron(value)
            except CalendarInvalid as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_timezone(value)
            except CalendarInvalid as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _at_most_one_calendar(self) -> ScheduleChange:
        if self.cron is not None and self.every_ms is not None:
            raise ValueError("give exactly one of 'cron' or 'everyMs'")
        return self


class ScheduleBody(ScheduleChange):
    """`POST /schedules`: a registered workflow, and when and how to run it."""

    workflow: str = Field(min_length=1, max_length=200, description="a registered workflow")
    input: Any = Field(default_factory=dict)
    mode: Mode = "auto"
    priority: int = Field(default=0, ge=0, le=MAX_PRIORITY)
    tags: list[str] = Field(default_factory=list, max_length=50)
    overlap: Overlap = "skip"
    paused: bool = False

    @model_validator(mode="after")
    def _one_calendar(self) -> ScheduleBody:
        if (self.cron is None) == (self.every_ms is None):
            raise ValueError("give exactly one of 'cron' or 'everyMs'")
        if self.timezone is not None and self.cron is None:
            raise ValueError("'timezone' applies to 'cron' only (everyMs counts from the epoch)")
        return self


class ScheduleRun(Resource):
    execution_id: str = Field(alias="executionId")
    slot: str
    status: str


class Schedule(Resource):
    """A schedule: what it runs, when, and how its slots went."""

    id: str
    workflow: str
    version: str | None = Field(description="null: the latest version at each fire")
    cron: str | None
    timezone: str | None
    every_ms: int | None = Field(alias="everyMs")
    input: Any
    mode: str
    priority: int
    tags: list[str]
    overlap: str
    catchup_window_ms: int = Field(alias="catchupWindowMs")
    jitter_ms: int = Field(alias="jitterMs")
    paused: bool
    next_fires: list[str] = Field(alias="nextFires", description="the next slots (UTC)")
    fired: int = Field(description="slots that started an execution")
    skipped: int = Field(description="slots skipped (overlap, catch-up, a failed start)")
    last_slot: str | None = Field(alias="lastSlot")
    buffered_slot: str | None = Field(alias="bufferedSlot", description="buffer_one's slot")
    last_error: dict[str, Any] | None = Field(alias="lastError")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    recent_executions: list[ScheduleRun] | None = Field(
        default=None, alias="recentExecutions", description="GET /schedules/{id}: newest first"
    )


class SchedulePage(Resource):
    items: list[Schedule]
    next_cursor: str | None = Field(alias="nextCursor")


class ScheduleDeleted(Resource):
    id: str
    deleted: bool
