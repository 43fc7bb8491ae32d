"""The execution page's timeline: one row per step, one segment per attempt, with the waits
between attempts (retry back-off), human-input waits and delays told apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.store.records import EventRecord
from app.ui.views import duration_text

ROWS = 200  # steps drawn; later ones are counted, not drawn
# The events that tell attempts apart, read only when some step was retried.
ATTEMPT_EVENTS = ("step.started", "step.retrying")


@dataclass(slots=True)
class Attempt:
    start: datetime
    end: datetime | None = None  # when it failed and a retry was planned
    delay_ms: float = 0.0


@dataclass(slots=True)
class Row:
    key: str
    status: str
    kind: str
    attempt: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    duration: str = ""


def attempts(events: Sequence[EventRecord]) -> dict[str, list[Attempt]]:
    """Each step's attempts, from its `step.started` and `step.retrying` events."""
    out: dict[str, list[Attempt]] = {}
    for event in events:
        key = str(event.data.get("stepKey") or event.data.get("nodeId"))
        if event.type == "step.started":
            out.setdefault(key, []).append(Attempt(event.created_at))
        elif out.get(key):
            out[key][-1].end = event.created_at
            out[key][-1].delay_ms = float(event.data.get("delayMs") or 0)
    return out


def _kind(node_type: str | None) -> str:
    return {"human.input": "wait", "delay": "delay"}.get(node_type or "", "work")


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def gantt(
    resource: dict[str, Any],
    types: dict[str, str],
    tries: dict[str, list[Attempt]] | None = None,
) -> dict[str, Any]:
    """Rows of the started steps; segment positions are % of the run's span."""
    tries = tries or {}
    steps = [s for s in resource.get("steps", []) if s.get("startedAt")]
    if not steps:
        return {"bars": [], "spanMs": 0, "hidden": 0}
    now = datetime.now(UTC)
    spans = []
    for step in steps:
        first = tries.get(step["stepKey"])
        begin = first[0].start if first else _parse(step["startedAt"])
        end = _parse(step["completedAt"]) if step.get("completedAt") else now
        spans.append((begin, max(end, begin), step))
    spans.sort(key=lambda s: s[0])
    origin = spans[0][0]
    total = max((max(e for _, e, _ in spans) - origin).total_seconds() * 1000, 1.0)

    def place(a: datetime, b: datetime, cls: str, title: str) -> dict[str, Any]:
        left = (a - origin).total_seconds() * 1000 / total * 100
        width = (b - a).total_seconds() * 1000 / total * 100
        return {"left": round(left, 2), "width": max(round(width, 2), 0.4), "cls": cls,
                "title": title}  # fmt: skip

    rows = []
    for begin, end, step in spans[:ROWS]:
        row = Row(step["stepKey"], step["status"], _kind(types.get(step["nodeId"])),
                  int(step.get("attempt") or 1))  # fmt: skip
        earlier = [t for t in tries.get(step["stepKey"], []) if t.end is not None]
        for n, t in enumerate(earlier, start=1):
            assert t.end is not None
            row.segments.append(place(t.start, t.end, "st-failed", f"attempt {n} failed"))
            resumed = tries[step["stepKey"]][n].start if n < len(tries[step["stepKey"]]) else end
            row.segments.append(place(t.end, resumed, "g-retry", f"retry in {t.delay_ms:.0f} ms"))
        last = tries[step["stepKey"]][-1].start if earlier else begin
        title = f"{step['status']}, attempt {row.attempt}"
        row.segments.append(place(last, end, f"g-{row.kind} st-{step['status']}", title))
        row.duration = duration_text((end - begin).total_seconds() * 1000)
        rows.append(row)
    return {"bars": rows, "spanMs": total, "hidden": max(0, len(spans) - ROWS)}
