"""Subscriptions as the API changes them: checked (patterns, sink, SSRF), secrets sealed,
and this process's cache reloaded at once (others reload within `sink_cache_ms`)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID, uuid4

import httpx

from app.errors import RequestInvalid, StepError, SubscriptionNotFound
from app.sinks.parts import SinkParts
from app.sinks.patterns import normalise, pattern_problem
from app.sinks.signing import new_secret
from app.store.subscriptions import ACTIVE, SubscriptionRecord

STREAM_NAME = re.compile(r"^[A-Za-z0-9:_.\-{}]{1,200}$")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _problem(field: str, code: str, message: str) -> RequestInvalid:
    return RequestInvalid(
        message, [{"loc": ["body", field], "field": field, "code": code, "message": message}]
    )


class SubscriptionService:
    def __init__(self, parts: SinkParts) -> None:
        self.parts = parts

    async def _check_url(self, url: str | None) -> None:
        if not url:
            raise _problem("url", "missing", "a webhook subscription needs a 'url'")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise _problem("url", "bad_url", f"'url' is not a URL: {exc}") from None
        if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
            raise _problem("url", "bad_url", "'url' must be an http:// or https:// URL")
        try:
            await self.parts.guard.vet(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme])
        except StepError as exc:
            raise _problem("url", exc.code, str(exc)) from None

    def _check_stream(self, stream: str | None) -> None:
        if not self.parts.has_redis:
            raise _problem(
                "sink", "sink_unavailable", "redis-stream sinks need REDIS_URL to be configured"
            )
        if not stream or not STREAM_NAME.match(stream):
            raise _problem(
                "stream",
                "bad_stream",
                "a redis-stream subscription needs a 'stream' name (letters, digits, ':_.-{}')",
            )

    @staticmethod
    def _events(events: list[str]) -> list[str]:
        for i, pattern in enumerate(events):
            problem = pattern_problem(pattern)
            if problem is not None:
                raise RequestInvalid(
                    problem,
                    [
                        {
                            "loc": ["body", "events", i],
                            "field": f"events[{i}]",
                            "code": "unknown_event",
                            "message": problem,
                        }
                    ],
                )
        return normalise(events)

    async def create(
        self, body: dict[str, Any], namespace: str
    ) -> tuple[SubscriptionRecord, str | None]:
        """A new subscription and, for a webhook, its signing secret (shown once)."""
        sink = body["sink"]
        secret: str | None = None
        values: dict[str, Any] = {
            "id": uuid4(),
            "namespace": namespace,
            "sink": sink,
            "events": self._events(body["events"]),
            "workflow": body.get("workflow"),
            "description": body.get("description"),
            "url": None,
            "stream": None,
            "secret": None,
            "batch_size": body.get("batch_size", 1),
        }
        if sink == "webhook":
            await self._check_url(body.get("url"))
            secret = body.get("secret") or new_secret()
            values["url"] = body["url"]
            values["secret"] = self.parts.seal.seal(secret)
        else:
            self._check_stream(body.get("stream"))
            values["stream"] = body["stream"]
        record = await self.parts.store.create(values)
        await self.parts.cache.load()
        return record, secret

    async def change(
        self, subscription_id: UUID, namespace: str | None, body: dict[str, Any]
    ) -> SubscriptionRecord:
        found = await self.get(subscription_id, namespace)
        values: dict[str, Any] = {}
        if "events" in body:
            if body["events"] is None:
                raise _problem("events", "missing", "'events' cannot be null")
            values["events"] = self._events(body["events"])
        if body.get("batch_size") is not None:
            values["batch_size"] = body["batch_size"]
        for name in ("workflow", "description"):
            if name in body:
                values[name] = body[name]
        values.update(await self._target(found, body))
        if body.get("status") == ACTIVE:
            values["status"] = ACTIVE
        if not values:
            return found
        changed = await self.parts.store.change(subscription_id, namespace, values)
        if changed is None:
            raise SubscriptionNotFound(f"no subscription with id {subscription_id}")
        await self.parts.cache.load()
        return changed

    async def _target(self, found: SubscriptionRecord, body: dict[str, Any]) -> dict[str, Any]:
        """A change of where events go (`url`, `stream`), checked."""
        values: dict[str, Any] = {}
        if "url" in body:
            if found.sink != "webhook":
                raise _problem("url", "not_webhook", "only a webhook subscription has a 'url'")
            await self._check_url(body["url"])
            values["url"] = body["url"]
        if "stream" in body:
            if found.sink != "redis-stream":
                raise _problem(
                    "stream", "not_stream", "only a redis-stream subscription has a 'stream'"
                )
            self._check_stream(body["stream"])
            values["stream"] = body["stream"]
        return values

    async def get(self, subscription_id: UUID, namespace: str | None) -> SubscriptionRecord:
        found = await self.parts.store.get(subscription_id, namespace)
        if found is None:
            raise SubscriptionNotFound(f"no subscription with id {subscription_id}")
        return found

    async def remove(self, subscription_id: UUID, namespace: str | None) -> None:
        if not await self.parts.store.remove(subscription_id, namespace):
            raise SubscriptionNotFound(f"no subscription with id {subscription_id}")
        await self.parts.cache.load()
