"""The dashboard's pure parts: form fields from a schema, the timeline, per-workflow stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from app.store.records import EventRecord
from app.ui import timeline
from app.ui.forms import schema_fields
from app.ui.views import diff_lines, outcome_stats

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def iso(ms: float) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def test_fields_take_labels_from_titles_or_names_and_html_checkable_constraints() -> None:
    schema = {
        "type": "object",
        "required": ["note", "ticket"],
        "properties": {
            "note": {"type": "string", "title": "Your note", "minLength": 3, "maxLength": 9},
            "amount": {"type": "number", "minimum": 1, "exclusiveMinimum": 0},
            "ok": {"type": "boolean", "default": True},
            "tier": {"enum": ["gold", "silver"]},
            "extra": {"type": "object"},
        },
    }
    fields = {f.name: f for f in schema_fields(schema) or []}
    assert fields["note"].label == "Your note" and fields["note"].required
    assert fields["note"].attrs == {"minlength": "3", "maxlength": "9"}
    # exclusiveMinimum has no HTML form: the server's 422 reports it.
    assert fields["amount"].label == "amount" and fields["amount"].attrs == {
        "min": "1",
        "step": "any",
    }
    assert (fields["ok"].kind, fields["ok"].default) == ("checkbox", "true")
    assert (fields["tier"].kind, fields["tier"].options) == ("select", ["gold", "silver"])
    assert fields["extra"].kind == "json"
    assert fields["ticket"].required and fields["ticket"].kind == "json"  # required, undescribed


@pytest.mark.parametrize("schema", [None, {"type": "string"}, {"type": "object"}, []])
def test_a_schema_without_properties_is_one_json_value(schema: object) -> None:
    assert schema_fields(schema) is None


def test_timeline_draws_each_attempt_and_the_back_off_between_them() -> None:
    def event(seq: int, kind: str, ms: float, **data: object) -> EventRecord:
        moment = T0 + timedelta(milliseconds=ms)
        return EventRecord(uuid4(), seq, kind, {"stepKey": "fetch", **data}, moment)

    events = [
        event(1, "step.started", 0, attempt=1),
        event(2, "step.retrying", 100, attempt=1, delayMs=200),
        event(3, "step.started", 300, attempt=2),
    ]
    resource = {
        "steps": [
            {"nodeId": "fetch", "stepKey": "fetch", "status": "completed", "attempt": 2,
             "startedAt": iso(300), "completedAt": iso(400)},
        ]
    }  # fmt: skip
    drawn = timeline.gantt(resource, {"fetch": "http.request"}, timeline.attempts(events))
    (row,) = drawn["bars"]
    assert [s["cls"] for s in row.segments] == ["st-failed", "g-retry", "g-work st-completed"]
    assert [(s["left"], s["width"]) for s in row.segments] == [(0, 25), (25, 50), (75, 25)]
    assert row.duration == "400 ms" and drawn["spanMs"] == 400


def test_waits_and_delays_are_told_apart_from_work() -> None:
    resource = {
        "steps": [
            {"nodeId": "ask", "stepKey": "ask", "status": "waiting", "startedAt": iso(0)},
            {"nodeId": "cool", "stepKey": "cool", "status": "completed", "startedAt": iso(0),
             "completedAt": iso(10)},
        ]
    }  # fmt: skip
    drawn = timeline.gantt(resource, {"ask": "human.input", "cool": "delay"})
    kinds = {row.key: row.kind for row in drawn["bars"]}
    assert kinds == {"ask": "wait", "cool": "delay"}


def test_outcome_stats_rate_the_finished_runs_and_time_the_completed_ones() -> None:
    runs = [{"status": "completed", "durationMs": float(ms)} for ms in range(100, 1100, 100)]
    runs += [{"status": "failed", "durationMs": 5.0}, {"status": "running", "durationMs": None}]
    stats = outcome_stats(runs)
    assert stats == {"finished": 11, "successRate": "91%", "p50": "500 ms", "p95": "1.0 s"}
    assert outcome_stats([])["successRate"] == "n/a"


def test_diff_marks_added_and_removed_lines() -> None:
    lines = diff_lines({"version": "1", "n": 1}, {"version": "2", "n": 1})
    assert ("del", '-  "version": "1",') in lines and ("add", '+  "version": "2",') in lines
