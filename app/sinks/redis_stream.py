"""The Redis Streams sink: XADD to the subscription's stream, capped with MAXLEN ~."""

from __future__ import annotations

from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.sinks.base import Message, Outcome
from app.store.subscriptions import SubscriptionRecord


def _fields(message: Message) -> dict[Any, Any]:
    return {
        "id": message.id,
        "type": message.type,
        "executionId": str(message.execution_id),
        "seq": message.seq,
        "data": message.body,
    }


class RedisStreamSink:
    kind: ClassVar[str] = "redis-stream"

    def __init__(self, redis: Redis, maxlen: int) -> None:
        self.redis = redis
        self.maxlen = maxlen

    async def send(
        self, subscription: SubscriptionRecord, secret: str | None, message: Message
    ) -> Outcome:
        try:
            await self.redis.xadd(
                subscription.stream or "", _fields(message), maxlen=self.maxlen, approximate=True
            )
        except (RedisError, OSError) as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(True)

    async def send_batch(
        self, subscription: SubscriptionRecord, secret: str | None, messages: list[Message]
    ) -> Outcome:
        """One XADD per event (a consumer sees no batch), in one pipeline round trip."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.xadd(
                        subscription.stream or "",
                        _fields(message),
                        maxlen=self.maxlen,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        return Outcome(True)

    async def close(self) -> None:
        return None  # the runtime owns the connection
