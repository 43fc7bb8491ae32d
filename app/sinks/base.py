"""The sink interface: a new kind of sink is one module with one class.

A sink is handed the subscription, its secret (decrypted) and the event's JSON body
(as the SSE stream carries it), and answers with an `Outcome`: `send` takes one event,
`send_batch` the events of a batched subscription (`batchSize` > 1) in one delivery, which
succeeds or fails as a whole. It never raises for a failed delivery: the loop turns a failed
outcome into a retry or a dead delivery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol
from uuid import UUID

from app.store.subscriptions import SubscriptionRecord


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None = None  # the receiver's answer, when it gave one
    error: str | None = None
    retryable: bool = True  # False: the delivery is dead at once (it can never succeed)


@dataclass(frozen=True, slots=True)
class Message:
    """One event as it goes out: whose it is, its type and its JSON body."""

    execution_id: UUID
    seq: int
    type: str
    body: bytes

    @property
    def id(self) -> str:
        """The event's id, `{executionId}:{seq}` (for de-duplication)."""
        return f"{self.execution_id}:{self.seq}"


class Sink(Protocol):
    kind: ClassVar[str]

    async def send(
        self, subscription: SubscriptionRecord, secret: str | None, message: Message
    ) -> Outcome: ...

    async def send_batch(
        self, subscription: SubscriptionRecord, secret: str | None, messages: list[Message]
    ) -> Outcome: ...

    async def close(self) -> None: ...
