"""What the sync and async clients share: configuration, request bodies, answers, backoff."""

from __future__ import annotations

import email.utils
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from turnout.errors import (
    ApiError,
    RateLimited,
    Unavailable,
    Unreachable,
    error_from_answer,
)
from turnout.models import Event, Execution

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "turnout-client/0.1"
MAX_RETRY_AFTER_S = 30.0
# A stream with no byte for this long (the server sends a heartbeat every 15 s) is
# presumed dead and resumed with Last-Event-ID.
STREAM_IDLE_S = 60.0
# While waiting with a deadline, a quiet stream is re-opened this often to check it.
WAIT_SLICE_S = 5.0
STREAM_RETRIES = 10  # reconnections in a row without an event before giving up


@dataclass(frozen=True)
class Config:
    base_url: str
    api_key: str | None
    timeout: float
    retries: int
    actor: str | None

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        actor: str | None,
    ) -> Config:
        url = base_url or os.environ.get("TURNOUT_URL") or DEFAULT_URL
        if "://" not in url:
            url = f"http://{url}"
        key = api_key if api_key is not None else os.environ.get("TURNOUT_API_KEY") or None
        return cls(url.rstrip("/"), key, timeout, retries, actor)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.actor:
            headers["X-Actor"] = self.actor
        return headers


def execution_path(execution_id: str, verb: str = "") -> str:
    path = f"/execution/{quote(str(execution_id), safe='')}"
    return f"{path}/{verb}" if verb else path


def circuit_reset_path(host: str) -> str:
    return f"/circuits/{quote(host, safe=':')}/reset"


def workflow_path(name: str, tail: str = "") -> str:
    path = f"/workflows/{quote(name, safe='')}"
    return f"{path}/{tail}" if tail else path


def run_request(
    workflow: str | Mapping[str, Any],
    *,
    input: Any,
    mode: str,
    version: str | None,
    priority: int | None,
    tags: Sequence[str] | None,
    timeout: float | None,
    metadata: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """The path and body of a run: an inline definition, or a registered workflow's name."""
    options: dict[str, Any] = {}
    if timeout is not None:
        options["timeout"] = max(1, round(timeout * 1000))
    if priority is not None:
        options["priority"] = priority
    if tags:
        options["tags"] = list(tags)
    body: dict[str, Any] = {"input": {} if input is None else input, "mode": mode}
    if options:
        body["options"] = options
    if metadata:
        body["metadata"] = dict(metadata)
    if isinstance(workflow, str):
        if version is not None:
            body["version"] = version
        return workflow_path(workflow, "run"), body
    body["workflow"] = dict(workflow)
    return "/workflow/run", body


MAX_BULK_RUNS = 1000  # runs per POST /workflow/runs; more are sent in several requests


def bulk_bodies(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The bodies of `POST /workflow/runs` for these runs (each a `POST /workflow/run` body,
    optionally with `idempotencyKey`), 1,000 a request. A run without a key gets one of
    ours, so the bounded retry of a 503 can never create it twice."""
    keyed = [
        {**run, "idempotencyKey": run.get("idempotencyKey") or f"turnout-client:{uuid.uuid4()}"}
        for run in runs
    ]
    return [{"runs": keyed[i : i + MAX_BULK_RUNS]} for i in range(0, len(keyed), MAX_BULK_RUNS)]


def bulk_results(answer: Any) -> list[Execution | ApiError]:
    """Each run's result: its execution (as a `202` answer shows it), or its error."""
    out: list[Execution | ApiError] = []
    for item in answer.get("results", []) if isinstance(answer, dict) else []:
        if isinstance(item.get("execution"), dict):
            out.append(Execution.from_dict(item["execution"]))
        else:
            out.append(error_from_answer(int(item.get("httpStatus") or 0), item))
    return out


def list_params(
    *,
    status: str | Sequence[str] | None = None,
    workflow: str | None = None,
    mode: str | None = None,
    tag: str | None = None,
    created_after: datetime | str | None = None,
    created_before: datetime | str | None = None,
) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    statuses = [status] if isinstance(status, str) else list(status or ())
    params += [("status", s) for s in statuses]
    for name, value in (
        ("workflow", workflow),
        ("mode", mode),
        ("tag", tag),
        ("createdAfter", _iso(created_after)),
        ("createdBefore", _iso(created_before)),
    ):
        if value is not None:
            params.append((name, value))
    return params


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class Pager:
    """Walks `GET /executions` page by page: each page's query, and what of it to keep."""

    def __init__(self, params: list[tuple[str, str]], page_size: int, limit: int | None) -> None:
        self.params = params
        self.page_size = page_size
        self.limit = limit
        self.cursor: str | None = None
        self.seen = 0
        self.done = False

    def next_query(self) -> list[tuple[str, str]] | None:
        """The next page's query; None when every wanted item was taken."""
        if self.done or (self.limit is not None and self.seen >= self.limit):
            return None
        left = None if self.limit is None else self.limit - self.seen
        size = self.page_size if left is None else min(self.page_size, left)
        cursor = [("cursor", self.cursor)] if self.cursor else []
        return [*self.params, ("limit", str(size)), *cursor]

    def take(self, body: Any) -> list[dict[str, Any]]:
        """The items of one answered page to hand out (never past `limit`)."""
        items, self.cursor = items_and_cursor(body)
        kept = items[: None if self.limit is None else self.limit - self.seen]
        self.seen += len(kept)
        self.done = not self.cursor or not items
        return kept


def parse_answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer; the typed ApiError of any other."""
    try:
        body = response.json() if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if response.is_success:
        return body
    raise error_from_answer(response.status_code, body, retry_after(response))


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_delay(exc: Exception, attempt: int, retries: int) -> float | None:
    """How long to wait before trying again, or None to give up and raise `exc`."""
    if attempt >= retries or not isinstance(exc, Unavailable | RateLimited):
        return None
    delay = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
    return min(delay, MAX_RETRY_AFTER_S)


def stream_backoff(failures: int) -> float:
    return min(0.1 * 2.0**failures, 5.0)


def unreachable(base_url: str, exc: httpx.TransportError) -> Unreachable:
    return Unreachable(
        f"cannot reach the Turnout server at {base_url}: {exc or type(exc).__name__}"
    )


def to_event(event: str, data: str, frame_id: str | None) -> Event:
    try:
        payload = json.loads(data) if data else {}
    except json.JSONDecodeError:
        payload = {"value": data}
    return Event.from_frame(event or "message", payload, frame_id or None)


@dataclass
class StreamCursor:
    """Where a followed stream stands, and what to do when its connection ends."""

    base_url: str
    last: int | None  # the newest seq seen: sent as Last-Event-ID on reconnect
    queue: bool  # yield the queue-position frames too
    terminal: bool = False  # the newest event seen is a terminal one
    failures: int = 0  # failed connections since the last event
    connected: bool = False

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": str(self.last)} if self.last is not None else {}

    def admit(self, event: str, data: str, frame_id: str | None) -> Event | None:
        """The event to hand on, or None (a repeat, or a queue frame not asked for)."""
        parsed = to_event(event, data, frame_id)
        if parsed.seq is None:
            return parsed if self.queue else None
        if self.last is not None and parsed.seq <= self.last:
            return None
        self.last, self.terminal, self.failures = parsed.seq, parsed.terminal, 0
        return parsed

    def recover(self, exc: Exception) -> float | None:
        """After the connection failed: None if the stream is over (its terminal event was
        seen), else how long to wait before resuming; raises when it should not resume."""
        if self.terminal:
            return None
        if isinstance(exc, httpx.ReadTimeout):
            return 0.0  # quiet for too long (or a wait's slice ended): open it again
        if isinstance(exc, ApiError) and not isinstance(exc, Unavailable | RateLimited):
            raise exc
        self.failures += 1
        if isinstance(exc, httpx.TransportError):
            never_connected = not self.connected and isinstance(exc, httpx.ConnectError)
            if never_connected or self.failures > STREAM_RETRIES:
                raise unreachable(self.base_url, exc) from exc
        elif self.failures > STREAM_RETRIES:
            raise exc
        delay = getattr(exc, "retry_after", None) or stream_backoff(self.failures)
        return float(min(delay, MAX_RETRY_AFTER_S))


def items_and_cursor(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a listing: `{items, nextCursor}` (or a bare list, for older servers)."""
    if isinstance(body, list):
        return [i for i in body if isinstance(i, dict)], None
    if not isinstance(body, dict):
        return [], None
    items = [i for i in body.get("items") or () if isinstance(i, dict)]
    cursor = body.get("nextCursor")
    return items, str(cursor) if cursor else None


def event_body(name: str, data: Any, event_id: str | None) -> dict[str, Any]:
    """`POST /events`: without an id one is made here, so a retried send stays one event."""
    return {"name": name, "data": data, "id": event_id or uuid.uuid4().hex}
