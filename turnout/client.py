"""The synchronous client: `Client("http://127.0.0.1:8000").run(workflow, wait=True)`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import connect_sse

from turnout import _core
from turnout.errors import ApiError, NotFound, WaitTimeout
from turnout.models import Circuit, Event, Execution, SentEvent, Workflow
from turnout.schedules import Schedule, schedule_body, schedule_path
from turnout.subscriptions import SubscriptionMethods


class Client(SubscriptionMethods):
    """Talks to one Turnout server. URL and API key default to `TURNOUT_URL` and
    `TURNOUT_API_KEY`; `retries` bounds the retries of a 503 or 429 (after Retry-After)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        actor: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = _core.Config.resolve(base_url, api_key, timeout, retries, actor)
        self._http = httpx.Client(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
                return _core.parse_answer(response)
            except httpx.TransportError as exc:
                raise _core.unreachable(self.base_url, exc) from exc
            except ApiError as exc:
                delay = _core.retry_delay(exc, attempt, self.config.retries)
                if delay is None:
                    raise
                attempt += 1
                time.sleep(delay)

    # Runs and executions

    def run(
        self,
        workflow: str | Mapping[str, Any],
        input: Any = None,
        *,
        mode: str = "auto",
        version: str | None = None,
        priority: int | None = None,
        tags: Sequence[str] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> Execution:
        """Run an inline definition (a dict) or a registered workflow (its name). `timeout`
        (seconds) bounds the run on the server; `wait` follows it to its end here."""
        path, body = _core.run_request(
            workflow,
            input=input,
            mode=mode,
            version=version,
            priority=priority,
            tags=tags,
            timeout=timeout,
            metadata=metadata,
        )
        # A key of our own makes the bounded retries of a 503 safe: never two executions.
        key = idempotency_key or f"turnout-client:{uuid.uuid4()}"
        answer = self._request("POST", path, json=body, headers={"Idempotency-Key": key})
        execution = Execution.from_dict(answer)
        if wait and not execution.terminal:
            return self.wait(execution.id, wait_timeout)
        return execution

    def run_many(self, runs: Sequence[Mapping[str, Any]]) -> list[Execution | ApiError]:
        """Queue many runs through `POST /workflow/runs` (1,000 a request, one commit each).
        Each run is a `POST /workflow/run` body (`workflow` or `workflowId`, `input`, `mode`,
        `options`, ...) with an optional `idempotencyKey`; the answer has one entry per run,
        in order: its `Execution` (`pending`), or the `ApiError` that refused it alone."""
        results: list[Execution | ApiError] = []
        for body in _core.bulk_bodies(runs):
            results.extend(_core.bulk_results(self._request("POST", "/workflow/runs", json=body)))
        return results

    def get(self, execution_id: str) -> Execution:
        return Execution.from_dict(self._request("GET", _core.execution_path(execution_id)))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        mode: str | None = None,
        tag: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Execution]:
        """Executions, newest first, across every page (at most `limit` if given)."""
        params = _core.list_params(
            status=status,
            workflow=workflow,
            mode=mode,
            tag=tag,
            created_after=created_after,
            created_before=created_before,
        )
        pager = _core.Pager(params, page_size, limit)
        while (query := pager.next_query()) is not None:
            for item in pager.take(self._request("GET", "/executions", params=query)):
                yield Execution.from_dict(item)

    def stream(
        self,
        execution_id: str,
        after: int | None = None,
        *,
        queue: bool = False,
        timeout: float | None = None,
    ) -> Iterator[Event]:
        """The execution's events after seq `after`, live, until the terminal one. A dropped
        connection is resumed with Last-Event-ID: nothing is missed, nothing repeated.
        With `queue`, the queue-position frames (seq None) are yielded too; after `timeout`
        seconds without the end, WaitTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            yield from self._follow(execution_id, after, deadline, queue)
        except WaitTimeout:
            raise WaitTimeout(execution_id, timeout or 0) from None

    def events(
        self, execution_id: str, after: int | None = None, *, settle: float = 0.5
    ) -> tuple[Event, ...]:
        """The events stored so far, without waiting for more: the stream's replay, up to
        its end or until it has been quiet for `settle` seconds."""
        events: list[Event] = []
        try:
            for event in self._follow(execution_id, after, None, False, idle=settle):
                events.append(event)
        except _Quiet:
            pass
        return tuple(events)

    def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        """Follow the stream until the execution ends; WaitTimeout after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        execution = self.get(execution_id)
        if execution.terminal:
            return execution
        try:
            for _ in self._follow(execution_id, None, deadline, False):
                pass
        except WaitTimeout:
            raise WaitTimeout(execution_id, timeout or 0, self.get(execution_id).status) from None
        return self.get(execution_id)

    def _follow(
        self,
        execution_id: str,
        after: int | None,
        deadline: float | None,
        queue: bool,
        idle: float | None = None,
    ) -> Iterator[Event]:
        cursor = _core.StreamCursor(self.base_url, after, queue)
        while True:
            read = idle or _core.STREAM_IDLE_S
            if deadline is not None:
                read = min(deadline - time.monotonic(), _core.WAIT_SLICE_S)
                if read <= 0:
                    raise WaitTimeout(execution_id, 0)
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    _core.execution_path(execution_id, "stream"),
                    headers=cursor.headers(),
                    timeout=httpx.Timeout(self.config.timeout, read=read),
                ) as source:
                    if not source.response.is_success:
                        source.response.read()
                        _core.parse_answer(source.response)
                    if source.response.status_code == 204:
                        return  # resumed at the end of a finished execution: nothing follows
                    cursor.connected = True
                    for sse in source.iter_sse():
                        event = cursor.admit(sse.event, sse.data, sse.id)
                        if event is not None:
                            yield event
                if cursor.terminal:
                    return
            except (httpx.TransportError, ApiError) as exc:
                if idle is not None and isinstance(exc, httpx.ReadTimeout):
                    raise _Quiet from None
                delay = cursor.recover(exc)
                if delay is None:
                    return
                time.sleep(delay)

    # Control

    def cancel(self, execution_id: str) -> Execution:
        return self._verb(execution_id, "cancel")

    def pause(self, execution_id: str, *, abort: bool = False) -> Execution:
        return self._verb(execution_id, "pause", params={"abort": "true"} if abort else None)

    def resume(self, execution_id: str) -> Execution:
        return self._verb(execution_id, "resume")

    def retry(
        self, execution_id: str, *, from_: str = "failed", version: str | None = None
    ) -> Execution:
        """A new attempt of a failed or cancelled execution, from its failed steps or from
        the start; `version` ("latest" or one) switches to that registered version."""
        body: dict[str, Any] = {"from": from_}
        if version is not None:
            body["version"] = version
        return self._verb(execution_id, "retry", json=body)

    def input(self, execution_id: str, node_id: str, data: Any) -> Execution:
        """Give a waiting `human.input` step its data."""
        return self._verb(execution_id, "input", json={"nodeId": node_id, "data": data})

    def _verb(
        self, execution_id: str, verb: str, *, json: Any = None, params: Any = None
    ) -> Execution:
        path = _core.execution_path(execution_id, verb)
        return Execution.from_dict(self._request("POST", path, json=json, params=params))

    # Events

    def send_event(self, name: str, data: Any = None, *, id: str | None = None) -> SentEvent:
        """Send an event to the `wait.event` steps and `on` triggers of its name; the same
        `id` again is the same event (nothing new happens)."""
        body = _core.event_body(name, data, id)
        return SentEvent.from_dict(self._request("POST", "/events", json=body))

    # Registry

    def register(self, definition: Mapping[str, Any]) -> Workflow:
        return Workflow.from_dict(self._request("POST", "/workflows", json=dict(definition)))

    def workflows(self, *, page_size: int = 100) -> Iterator[Workflow]:
        """Registered workflows, across every page."""
        cursor: str | None = None
        while True:
            params = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            items, cursor = _core.items_and_cursor(
                self._request("GET", "/workflows", params=params)
            )
            yield from (Workflow.from_dict(item) for item in items)
            if not cursor or not items:
                return

    def workflow(self, name: str, version: str | None = None) -> Workflow:
        params = {"version": version} if version is not None else None
        return Workflow.from_dict(self._request("GET", _core.workflow_path(name), params=params))

    def versions(self, name: str) -> tuple[Workflow, ...]:
        """Every registered version of a workflow."""
        try:
            body = self._request("GET", _core.workflow_path(name, "versions"))
        except NotFound as exc:
            if exc.code != "not_found":  # the workflow is unknown (not an older server)
                raise
            latest = self.workflow(name)
            return tuple(Workflow(name=name, version=v) for v in latest.versions)
        items, _ = _core.items_and_cursor(body)
        return tuple(Workflow.from_dict({"name": name, **item}) for item in items)

    # Schedules

    def create_schedule(self, workflow: str, **fields: Any) -> Schedule:
        """`cron=` (+ `timezone=`) or `every_ms=`; `input`, `mode`, `priority`, `tags`,
        `overlap`, `catchup_window_ms`, `jitter_ms`, `paused`, `version` as the API has them."""
        body = schedule_body(workflow=workflow, **fields)
        return Schedule.from_dict(self._request("POST", schedule_path(), json=body))

    def schedule(self, schedule_id: str) -> Schedule:
        return Schedule.from_dict(self._request("GET", schedule_path(schedule_id)))

    def schedules(
        self, *, workflow: str | None = None, page_size: int = 100
    ) -> tuple[Schedule, ...]:
        """Every schedule (of this key's namespace), across every page."""
        found: tuple[Schedule, ...] = ()
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if workflow:
                params["workflow"] = workflow
            if cursor:
                params["cursor"] = cursor
            items, cursor = _core.items_and_cursor(
                self._request("GET", schedule_path(), params=params)
            )
            found += tuple(Schedule.from_dict(item) for item in items)
            if not cursor or not items:
                return found

    def update_schedule(self, schedule_id: str, **fields: Any) -> Schedule:
        body = schedule_body(**fields)
        path = schedule_path(schedule_id)
        return Schedule.from_dict(self._request("PATCH", path, json=body))

    def pause_schedule(self, schedule_id: str) -> Schedule:
        return self.update_schedule(schedule_id, paused=True)

    def resume_schedule(self, schedule_id: str) -> Schedule:
        return self.update_schedule(schedule_id, paused=False)

    def delete_schedule(self, schedule_id: str) -> None:
        self._request("DELETE", schedule_path(schedule_id))

    # Circuit breakers

    def circuits(self) -> tuple[Circuit, ...]:
        """The namespace's circuit breakers of `http.request`, one per target host."""
        body = self._request("GET", "/circuits")
        return tuple(Circuit.from_dict(item) for item in body.get("items", []))

    def reset_circuit(self, host: str) -> tuple[str, ...]:
        """Close a host's breakers (`host:port`, or `host` for every port); admin scope."""
        body = self._request("POST", _core.circuit_reset_path(host))
        return tuple(str(name) for name in body.get("reset", []))

    def health(self) -> bool:
        """True when the server answers `/healthz`; Unreachable otherwise."""
        self._request("GET", "/healthz")
        return True


class _Quiet(Exception):
    """The stream sent nothing for the `events` settle time: the replay is over."""
