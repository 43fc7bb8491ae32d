"""An event as it goes out (the SSE stream's `data:`, a webhook's body, a stream entry's
`data`): its JSON text (pure)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from app.jsonvalue import dumps
from app.store.records import EventRecord

__all__ = ["event_json", "event_json_of"]


def event_json(event: EventRecord) -> str:
    payload: dict[str, Any] = {
        "executionId": str(event.execution_id),
        "seq": event.seq,
        "type": event.type,
        "at": event.created_at.isoformat().replace("+00:00", "Z"),
        **event.data,
    }
    return dumps(payload)


# The keys event_json puts before the data's own (the data's win, as in the dict above).
_OWN_KEYS = re.compile('"(?:executionId|seq|type|at)"')
# An event type that needs no escaping in a JSON string (every type Turnout writes).
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")


def event_json_of(execution_id: UUID, seq: int, type_: str, at: datetime, data_json: str) -> str:
    """`event_json` of an event whose data is JSON text already (a JSON object, as Postgres
    writes `jsonb`): the same event, spliced instead of decoded and encoded again. The data
    keeps its text (jsonb's order and spacing); data that names one of the event's own keys
    (or holds such a string), or is not an object, takes the slow path, so no key is ever
    written twice and nothing but an object is spliced."""
    rest = data_json.strip()
    if not rest.startswith("{") or _OWN_KEYS.search(rest) or not _PLAIN.fullmatch(type_):
        return event_json(EventRecord(execution_id, seq, type_, json.loads(data_json), at))
    head = (
        f'{{"executionId":"{execution_id}","seq":{seq},"type":"{type_}",'
        f'"at":"{at.isoformat().replace("+00:00", "Z")}"'
    )
    rest = rest[1:].lstrip()
    return head + ("}" if rest == "}" else "," + rest)
