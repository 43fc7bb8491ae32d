"""Control signals: tell the process running an execution to stop, now rather than at its
next checkpoint (the database's `control_action` stays the truth either way)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from app.engine.stops import ACTIONS
from app.execution.active import ActiveRuns
from app.execution.steering import Signal
from app.tasks import stop

log = logging.getLogger(__name__)


def deliver(active: ActiveRuns, execution_id: UUID, action: str, by: str | None = None) -> bool:
    control = active.get(execution_id)
    if control is None or action not in ACTIONS:
        return False
    control.request(ACTIONS[action], f"{action} requested", by)
    return True


class LocalSignals:
    """One process runs everything (embedded default)."""

    def __init__(self, active: ActiveRuns) -> None:
        self.active = active

    async def send(self, execution_id: UUID, action: Signal, by: str | None = None) -> None:
        deliver(self.active, execution_id, action, by)


class RedisSignals:
    """Publishes on `{prefix}:control`; every process listens and acts on its own runs."""

    def __init__(self, redis: Redis, prefix: str, active: ActiveRuns) -> None:
        self.redis = redis
        self.channel = f"{prefix}:control"
        self.active = active
        self._listener: asyncio.Task[None] | None = None

    async def send(self, execution_id: UUID, action: Signal, by: str | None = None) -> None:
        if deliver(self.active, execution_id, action, by):
            return  # it runs here: no need for a round trip
        try:
            await self.redis.publish(
                self.channel, json.dumps({"id": str(execution_id), "a": action, "by": by})
            )
        except Exception:
            log.warning("control signal not sent; the runner will see it at its next checkpoint")

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("control listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        try:
            body = json.loads(message["data"])
            by = body.get("by")
            deliver(self.active, UUID(body["id"]), body["a"], by if isinstance(by, str) else None)
        except (ValueError, KeyError, TypeError):
            log.warning("bad control message ignored")

    async def close(self) -> None:
        await stop(self._listener)
