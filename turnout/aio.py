"""The asyncio client: the same methods as `Client`, awaited (`stream` is async-iterated)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from turnout import _core
from turnout.errors import ApiError, NotFound, WaitTimeout
from turnout.models import Circuit, Event, Execution, SentEvent, Workflow
from turnout.schedules import Schedule, schedule_body, schedule_path
from turnout.subscriptions import AsyncSubscriptionMethods


class AsyncClient(AsyncSubscriptionMethods):
    """Talks to one Turnout server from asyncio code; see `Client` for the arguments."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        actor: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = _core.Config.resolve(base_url, api_key, timeout, retries, actor)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url,
            headers=self.config.headers(),
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self.config.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _request(
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
                response = await self._http.request(
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
                await asyncio.sleep(delay)

    # Runs and executions

    async def run(
        self,
        workflow: str | Mapping[str, Any],
        input: Any = None,
        *,
        mode: str = "auto",
        version: str | None = None,
        priority: int | None = None,
        tags: Sequence[str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the run's own, on the server)
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        wait: bool = False,
        wait_timeout: float | None = None,
    ) -> Execution:
        """Run an inline definition (a dict) or a registered workflow (its name)."""
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
        key = idempotency_key or f"turnout-client:{uuid.uuid4()}"
        answer = await self._request("POST", path, json=body, headers={"Idempotency-Key": key})
        execution = Execution.from_dict(answer)
        if wait and not execution.terminal:
            return await self.wait(execution.id, wait_timeout)
        return execution

    async def run_many(self, runs: Sequence[Mapping[str, Any]]) -> list[Execution | ApiError]:
        """Queue many runs through `POST /workflow/runs` (1,000 a request, one commit each).
        Each run is a `POST /workflow/run` body (`workflow` or `workflowId`, `input`, `mode`,
        `options`, ...) with an optional `idempotencyKey`; the answer has one entry per run,
        in order: its `Execution` (`pending`), or the `ApiError` that refused it alone."""
        results: list[Execution | ApiError] = []
        for body in _core.bulk_bodies(runs):
            results.extend(
                _core.bulk_results(await self._request("POST", "/workflow/runs", json=body))
            )
        return results

    async def get(self, execution_id: str) -> Execution:
        answer = await self._request("GET", _core.execution_path(execution_id))
        return Execution.from_dict(answer)

    async def list(
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
    ) -> AsyncIterator[Execution]:
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
            for item in pager.take(await self._request("GET", "/executions", params=query)):
                yield Execution.from_dict(item)

    async def stream(
        self, execution_id: str, after: int | None = None, *, queue: bool = False
    ) -> AsyncIterator[Event]:
        """The execution's events after seq `after`, live, until the terminal one; a dropped
        connection is resumed with Last-Event-ID (nothing missed, nothing repeated)."""
        cursor = _core.StreamCursor(self.base_url, after, queue)
        timeout = httpx.Timeout(self.config.timeout, read=_core.STREAM_IDLE_S)
        while True:
            try:
                async with aconnect_sse(
                    self._http,
                    "GET",
                    _core.execution_path(execution_id, "stream"),
                    headers=cursor.headers(),
                    timeout=timeout,
                ) as source:
                    if not source.response.is_success:
                        await source.response.aread()
                        _core.parse_answer(source.response)
                    if source.response.status_code == 204:
                        return  # resumed at the end of a finished execution: nothing follows
                    cursor.connected = True
                    async for sse in source.aiter_sse():
                        event = cursor.admit(sse.event, sse.data, sse.id)
                        if event is not None:
                            yield event
                if cursor.terminal:
                    return
            except (httpx.TransportError, ApiError) as exc:
                delay = cursor.recover(exc)
                if delay is None:
                    return
                await asyncio.sleep(delay)

    async def events(
        self, execution_id: str, after: int | None = None, *, settle: float = 0.5
    ) -> tuple[Event, ...]:
        """The events stored so far, without waiting for more: the stream's replay, up to
        its end or until it has been quiet for `settle` seconds."""
        found: list[Event] = []
        events = self.stream(execution_id, after)
        try:
            while True:
                try:
                    async with asyncio.timeout(settle):
                        found.append(await anext(events))
                except (StopAsyncIteration, TimeoutError):
                    break
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        return tuple(found)

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 (applied with asyncio.timeout)
    ) -> Execution:
        """Follow the stream until the execution ends; WaitTimeout after `timeout` s."""
        execution = await self.get(execution_id)
        if execution.terminal:
            return execution
        events = self.stream(execution_id)
        try:
            async with asyncio.timeout(timeout):
                async for _ in events:
                    pass
        except TimeoutError:
            status = (await self.get(execution_id)).status
            raise WaitTimeout(execution_id, timeout or 0, status) from None
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        return await self.get(execution_id)

    # Control

    async def cancel(self, execution_id: str) -> Execution:
        return await self._verb(execution_id, "cancel")

    async def pause(self, execution_id: str, *, abort: bool = False) -> Execution:
        params = {"abort": "true"} if abort else None
        return await self._verb(execution_id, "pause", params=params)

    async def resume(self, execution_id: str) -> Execution:
        return await self._verb(execution_id, "resume")

    async def retry(
        self, execution_id: str, *, from_: str = "failed", version: str | None = None
    ) -> Execution:
        body: dict[str, Any] = {"from": from_}
        if version is not None:
            body["version"] = version
        return await self._verb(execution_id, "retry", json=body)

    async def input(self, execution_id: str, node_id: str, data: Any) -> Execution:
        return await self._verb(execution_id, "input", json={"nodeId": node_id, "data": data})

    async def _verb(
        self, execution_id: str, verb: str, *, json: Any = None, params: Any = None
    ) -> Execution:
        path = _core.execution_path(execution_id, verb)
        return Execution.from_dict(await self._request("POST", path, json=json, params=params))

    # Events

    async def send_event(self, name: str, data: Any = None, *, id: str | None = None) -> SentEvent:
        """Send an event to the `wait.event` steps and `on` triggers of its name; the same
        `id` again is the same event (nothing new happens)."""
        body = _core.event_body(name, data, id)
        return SentEvent.from_dict(await self._request("POST", "/events", json=body))

    # Registry

    async def register(self, definition: Mapping[str, Any]) -> Workflow:
        answer = await self._request("POST", "/workflows", json=dict(definition))
        return Workflow.from_dict(answer)

    async def workflows(self, *, page_size: int = 100) -> AsyncIterator[Workflow]:
        cursor: str | None = None
        while True:
            params = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            items, cursor = _core.items_and_cursor(
                await self._request("GET", "/workflows", params=params)
            )
            for item in items:
                yield Workflow.from_dict(item)
            if not cursor or not items:
                return

    async def workflow(self, name: str, version: str | None = None) -> Workflow:
        params = {"version": version} if version is not None else None
        answer = await self._request("GET", _core.workflow_path(name), params=params)
        return Workflow.from_dict(answer)

    async def versions(self, name: str) -> tuple[Workflow, ...]:
        try:
            body = await self._request("GET", _core.workflow_path(name, "versions"))
        except NotFound as exc:
            if exc.code != "not_found":
                raise
            latest = await self.workflow(name)
            return tuple(Workflow(name=name, version=v) for v in latest.versions)
        items, _ = _core.items_and_cursor(body)
        return tuple(Workflow.from_dict({"name": name, **item}) for item in items)

    # Schedules

    async def create_schedule(self, workflow: str, **fields: Any) -> Schedule:
        """`cron=` (+ `timezone=`) or `every_ms=`; `input`, `mode`, `priority`, `tags`,
        `overlap`, `catchup_window_ms`, `jitter_ms`, `paused`, `version` as the API has them."""
        body = schedule_body(workflow=workflow, **fields)
        return Schedule.from_dict(await self._request("POST", schedule_path(), json=body))

    async def schedule(self, schedule_id: str) -> Schedule:
        return Schedule.from_dict(await self._request("GET", schedule_path(schedule_id)))

    async def schedules(
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
                await self._request("GET", schedule_path(), params=params)
            )
            found += tuple(Schedule.from_dict(item) for item in items)
            if not cursor or not items:
                return found

    async def update_schedule(self, schedule_id: str, **fields: Any) -> Schedule:
        body = schedule_body(**fields)
        path = schedule_path(schedule_id)
        return Schedule.from_dict(await self._request("PATCH", path, json=body))

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        return await self.update_schedule(schedule_id, paused=True)

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        return await self.update_schedule(schedule_id, paused=False)

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._request("DELETE", schedule_path(schedule_id))

    # Circuit breakers

    async def circuits(self) -> tuple[Circuit, ...]:
        """The namespace's circuit breakers of `http.request`, one per target host."""
        body = await self._request("GET", "/circuits")
        return tuple(Circuit.from_dict(item) for item in body.get("items", []))

    async def reset_circuit(self, host: str) -> tuple[str, ...]:
        """Close a host's breakers (`host:port`, or `host` for every port); admin scope."""
        body = await self._request("POST", _core.circuit_reset_path(host))
        return tuple(str(name) for name in body.get("reset", []))

    async def health(self) -> bool:
        await self._request("GET", "/healthz")
        return True
