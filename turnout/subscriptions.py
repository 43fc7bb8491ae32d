"""Event subscriptions from the client: `client.create_subscription(sink="webhook", ...)`.

Mixed into `Client` and `AsyncClient`; answers are the API's JSON objects (`id`, `sink`,
`url`, `stream`, `events`, `status`, `deliveries`, ...; `secret` once, on creation)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from turnout import _core


def subscription_body(
    sink: str,
    events: Sequence[str],
    *,
    url: str | None = None,
    stream: str | None = None,
    workflow: str | None = None,
    namespace: str | None = None,
    secret: str | None = None,
    description: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"sink": sink, "events": list(events)}
    if batch_size is not None:
        body["batchSize"] = batch_size
    for name, value in (
        ("url", url),
        ("stream", stream),
        ("workflow", workflow),
        ("namespace", namespace),
        ("secret", secret),
        ("description", description),
    ):
        if value is not None:
            body[name] = value
    return body


def subscription_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`batch_size=` as the API spells it (`batchSize`)."""
    return {("batchSize" if k == "batch_size" else k): v for k, v in changes.items()}


def subscription_path(subscription_id: str, tail: str = "") -> str:
    return f"/subscriptions/{quote(str(subscription_id), safe='')}{tail}"


def delivery_params(status: str | None, page_size: int, cursor: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": page_size}
    if status is not None:
        params["status"] = status
    if cursor:
        params["cursor"] = cursor
    return params


class _Sync(Protocol):
    def _request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any: ...


class _Async(Protocol):
    def _request(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> Awaitable[Any]: ...


class SubscriptionMethods:
    def create_subscription(
        self: _Sync, sink: str, events: Sequence[str], **fields: Any
    ) -> dict[str, Any]:
        """A new subscription; a webhook's answer holds its signing `secret` (only this once).
        `batch_size=` > 1 gets many events per delivery (a webhook's body is a JSON array)."""
        body = subscription_body(sink, events, **fields)
        answer: dict[str, Any] = self._request("POST", "/subscriptions", json=body)
        return answer

    def subscriptions(self: _Sync) -> list[dict[str, Any]]:
        items, _ = _core.items_and_cursor(self._request("GET", "/subscriptions"))
        return items

    def subscription(self: _Sync, subscription_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("GET", subscription_path(subscription_id))
        return answer

    def update_subscription(self: _Sync, subscription_id: str, **changes: Any) -> dict[str, Any]:
        """Change `url`, `stream`, `events`, `workflow`, `description`, `batch_size`;
        `status="active"`."""
        path = subscription_path(subscription_id)
        answer: dict[str, Any] = self._request("PATCH", path, json=subscription_changes(changes))
        return answer

    def delete_subscription(self: _Sync, subscription_id: str) -> None:
        self._request("DELETE", subscription_path(subscription_id))

    def deliveries(
        self: _Sync, subscription_id: str, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """A subscription's deliveries, newest first, across every page."""
        cursor: str | None = None
        while True:
            params = delivery_params(status, page_size, cursor)
            body = self._request(
                "GET", subscription_path(subscription_id, "/deliveries"), params=params
            )
            items, cursor = _core.items_and_cursor(body)
            yield from items
            if not cursor or not items:
                return

    def redeliver(self: _Sync, subscription_id: str, delivery_id: int) -> dict[str, Any]:
        path = subscription_path(subscription_id, f"/deliveries/{int(delivery_id)}/redeliver")
        answer: dict[str, Any] = self._request("POST", path)
        return answer


class AsyncSubscriptionMethods:
    async def create_subscription(
        self: _Async, sink: str, events: Sequence[str], **fields: Any
    ) -> dict[str, Any]:
        """A new subscription; a webhook's answer holds its signing `secret` (only this once).
        `batch_size=` > 1 gets many events per delivery (a webhook's body is a JSON array)."""
        body = subscription_body(sink, events, **fields)
        answer: dict[str, Any] = await self._request("POST", "/subscriptions", json=body)
        return answer

    async def subscriptions(self: _Async) -> list[dict[str, Any]]:
        items, _ = _core.items_and_cursor(await self._request("GET", "/subscriptions"))
        return items

    async def subscription(self: _Async, subscription_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._request("GET", subscription_path(subscription_id))
        return answer

    async def update_subscription(
        self: _Async, subscription_id: str, **changes: Any
    ) -> dict[str, Any]:
        """Change `url`, `stream`, `events`, `workflow`, `description`, `batch_size`;
        `status="active"`."""
        path = subscription_path(subscription_id)
        answer: dict[str, Any] = await self._request(
            "PATCH", path, json=subscription_changes(changes)
        )
        return answer

    async def delete_subscription(self: _Async, subscription_id: str) -> None:
        await self._request("DELETE", subscription_path(subscription_id))

    async def deliveries(
        self: _Async, subscription_id: str, *, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """A subscription's deliveries, newest first, across every page."""
        cursor: str | None = None
        while True:
            params = delivery_params(status, page_size, cursor)
            body = await self._request(
                "GET", subscription_path(subscription_id, "/deliveries"), params=params
            )
            items, cursor = _core.items_and_cursor(body)
            for item in items:
                yield item
            if not cursor or not items:
                return

    async def redeliver(self: _Async, subscription_id: str, delivery_id: int) -> dict[str, Any]:
        path = subscription_path(subscription_id, f"/deliveries/{int(delivery_id)}/redeliver")
        answer: dict[str, Any] = await self._request("POST", path)
        return answer
