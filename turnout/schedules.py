"""Schedules as the client sees them, and the bodies both clients send."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

# The client's keyword names and the API's field names.
FIELDS = {
    "version": "version",
    "cron": "cron",
    "timezone": "timezone",
    "every_ms": "everyMs",
    "input": "input",
    "mode": "mode",
    "priority": "priority",
    "tags": "tags",
    "overlap": "overlap",
    "catchup_window_ms": "catchupWindowMs",
    "jitter_ms": "jitterMs",
    "paused": "paused",
}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def schedule_body(**fields: Any) -> dict[str, Any]:
    """The JSON body of a create or change: the keywords given, by their API names."""
    unknown = set(fields) - set(FIELDS) - {"workflow"}
    if unknown:
        raise TypeError(f"unknown schedule fields: {', '.join(sorted(unknown))}")
    body = {"workflow": fields.pop("workflow")} if "workflow" in fields else {}
    for name, value in fields.items():
        if value is not None or name == "version":
            body[FIELDS[name]] = value
    return body


def schedule_path(schedule_id: str | UUID | None = None) -> str:
    return "/schedules" if schedule_id is None else f"/schedules/{UUID(str(schedule_id))}"


@dataclass(frozen=True)
class Schedule:
    """A schedule: what it runs (`workflow`, `version`), when (`cron` + `timezone`, or
    `every_ms`), and `next_fires`."""

    id: str
    workflow: str
    version: str | None = None
    cron: str | None = None
    timezone: str | None = None
    every_ms: int | None = None
    input: Any = None
    mode: str = "auto"
    priority: int = 0
    tags: tuple[str, ...] = ()
    overlap: str = "skip"
    catchup_window_ms: int | None = None
    jitter_ms: int = 0
    paused: bool = False
    next_fires: tuple[datetime, ...] = ()
    fired: int = 0
    skipped: int = 0
    last_slot: datetime | None = None
    last_error: dict[str, Any] | None = None
    recent_executions: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        fires = (_time(at) for at in data.get("nextFires") or ())
        return cls(
            id=str(data.get("id", "")),
            workflow=str(data.get("workflow", "")),
            version=data.get("version"),
            cron=data.get("cron"),
            timezone=data.get("timezone"),
            every_ms=data.get("everyMs"),
            input=data.get("input"),
            mode=str(data.get("mode", "auto")),
            priority=int(data.get("priority") or 0),
            tags=tuple(data.get("tags") or ()),
            overlap=str(data.get("overlap", "skip")),
            catchup_window_ms=data.get("catchupWindowMs"),
            jitter_ms=int(data.get("jitterMs") or 0),
            paused=bool(data.get("paused")),
            next_fires=tuple(at for at in fires if at is not None),
            fired=int(data.get("fired") or 0),
            skipped=int(data.get("skipped") or 0),
            last_slot=_time(data.get("lastSlot")),
            last_error=data.get("lastError"),
            recent_executions=tuple(data.get("recentExecutions") or ()),
            raw=data,
        )
