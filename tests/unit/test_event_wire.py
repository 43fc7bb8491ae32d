"""An event's JSON spliced from its stored data text is the event `event_json` writes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from uuid import uuid4

import pytest

from app.events.wire import event_json, event_json_of
from app.store.records import EventRecord

AT = dt.datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=dt.UTC)

DATA: list[dict[str, Any]] = [
    {},
    {"stepKey": "a", "output": {"x": [1, 2.5, None, True]}, "attempt": 1},
    {"text": 'é ✓ \\ " \n', "nested": {"deep": {"er": []}}},
    {"type": "overridden", "seq": 99},  # the data's own keys win, as in event_json
    {"note": 'a value that says "seq"'},
]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("spacing", [(",", ":"), (", ", ": ")], ids=["compact", "jsonb"])
def test_the_spliced_event_is_the_encoded_one(
    data: dict[str, Any], spacing: tuple[str, str]
) -> None:
    event = EventRecord(uuid4(), 7, "step.completed", data, AT)
    text = json.dumps(data, separators=spacing, ensure_ascii=False)
    spliced = event_json_of(event.execution_id, 7, "step.completed", AT, text)
    assert json.loads(spliced) == json.loads(event_json(event))
    keys = json.loads(spliced, object_pairs_hook=lambda pairs: [k for k, _ in pairs])
    assert len(keys) == len(set(keys))  # never a key twice


@pytest.mark.parametrize("text", ["null", "[]", "[1]", '"x"', "1"])
def test_data_that_is_not_an_object_is_refused_as_event_json_refuses_it(text: str) -> None:
    with pytest.raises(TypeError):
        event_json_of(uuid4(), 1, "step.completed", AT, text)


def test_a_type_that_needs_escaping_is_encoded() -> None:
    event = EventRecord(uuid4(), 1, 'odd"type', {"a": 1}, AT)
    spliced = event_json_of(event.execution_id, 1, event.type, AT, '{"a": 1}')
    assert json.loads(spliced) == json.loads(event_json(event))


def test_whole_seconds_are_written_as_isoformat_does() -> None:
    at = AT.replace(microsecond=0)
    event = EventRecord(uuid4(), 1, "execution.created", {"a": 1}, at)
    assert event_json_of(event.execution_id, 1, event.type, at, '{"a": 1}') == (
        f'{{"executionId":"{event.execution_id}","seq":1,"type":"execution.created",'
        '"at":"2026-12-07T01:02:03Z","a": 1}'
    )
