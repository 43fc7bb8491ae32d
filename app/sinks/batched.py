"""Batched subscriptions (`batchSize` > 1): the claimed queues of one subscription go out
together, cut into deliveries of up to `batchSize` events (`app.sinks.batches`).

Each subscription has at most one batch in flight in a process (its *lane*): what is
claimed for it meanwhile waits in the lane and goes with the next delivery, with what the
executions in flight added meanwhile. A busy lane's next delivery starts at least
`sink_linger_ms` after the one before (unless a full batch waits), as Kafka's `linger.ms`:
so the busier it is, the bigger its deliveries, and an idle one sends at once.

Each delivery goes only once the one before it was answered with a success, so every
execution's events stay in order. A failed delivery is a failed attempt for the head of
every queue it carried that is not yet delivered (each waits its own backoff, and is dead
after the last attempt); queues carried whole by earlier deliveries are recorded as
delivered. When everything was sent, what the executions added meanwhile is leased in the
same statement that records the deliveries, and goes out next."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING
from uuid import UUID

from app.auth.vault import VaultUnavailable
from app.sinks.base import Message, Outcome
from app.sinks.batches import MAX_BATCH_BYTES, cut
from app.store.deliveries import DeliveryRecord, Recorded
from app.store.subscriptions import SubscriptionRecord

if TYPE_CHECKING:
    from app.sinks.dispatcher import Dispatcher


def message_for(row: DeliveryRecord, body: bytes) -> Message:
    """The claimed event of `row` as it goes out (its JSON `body`, as the stream's `data:`)."""
    return Message(row.execution_id, row.seq, row.event_type, body)


def no_sink(sub: SubscriptionRecord) -> Outcome:
    return Outcome(False, error=f"no {sub.sink} sink here", retryable=False)


class BatchedSender:
    def __init__(self, dispatcher: Dispatcher, linger_ms: int) -> None:
        self.d = dispatcher
        self.linger_s = linger_ms / 1000
        # Per subscription with a batch in flight: the queues claimed for it meanwhile.
        self.lanes: dict[UUID, list[list[DeliveryRecord]]] = {}
        # Set when a lane takes what waited in it: the loop's next claim waits for that
        # when its last one only added to lanes in flight (one claim per round, not one
        # per commit).
        self.round = asyncio.Event()
        self.fed = False

    async def next_round(self, timeout_s: float) -> None:
        """Until a lane takes what waits in it (or `timeout_s`)."""
        self.round.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.round.wait(), timeout_s)

    def take(self, sub: SubscriptionRecord, queues: list[list[DeliveryRecord]]) -> int:
        """Queue `queues` on `sub`'s lane; 1 if that started its task, else 0."""
        waiting = self.lanes.get(sub.id)
        if waiting is not None:
            waiting.extend(queues)
            self.fed = True
            return 0
        self.lanes[sub.id] = list(queues)
        self.d.spawn(sub.id, self._lane(sub))
        return 1

    async def _lane(self, sub: SubscriptionRecord) -> None:
        try:
            queues: list[list[DeliveryRecord]] = []
            started: float | None = None
            while True:
                if started is not None:  # busy: linger, unless a full batch waits
                    wait = self.linger_s - (time.monotonic() - started)
                    waiting = sum(len(q) for q in (*queues, *self.lanes[sub.id]))
                    if wait > 0 and waiting < sub.batch_size:
                        await asyncio.sleep(wait)
                started = time.monotonic()
                queues += self.lanes[sub.id]
                self.lanes[sub.id] = []
                self.round.set()
                if not queues:
                    return
                queues = await self.send(sub, queues)
        finally:
            del self.lanes[sub.id]  # what waited in it is leased: its lease runs out

    async def send(
        self, sub: SubscriptionRecord, queues: list[list[DeliveryRecord]]
    ) -> list[list[DeliveryRecord]]:
        """Send `queues`; what their executions added meanwhile (leased, to go next)."""
        d = self.d
        try:
            secret = d.seal.unseal(sub.secret)
        except VaultUnavailable as exc:
            await d.fail(
                sub, [q[0] for q in queues], Outcome(False, error=str(exc), retryable=False)
            )
            return []
        gone = [r.id for q in queues for r in q if r.body is None]
        if gone:  # their execution was deleted (retention)
            await d.deliveries.drop(gone)
            queues = [kept for q in queues if (kept := [r for r in q if r.body is not None])]
            if not queues:
                return []
        ok, status = await self._send_all(sub, secret, queues)
        if not ok:
            return []  # failed, or the lease was lost: these queues stop here
        # Record them and take what the executions added meanwhile, in one round trip.
        found = await d.recorder.record_many(
            [Recorded(list(dict.fromkeys(r.id for r in q)), status, q[-1]) for q in queues]
        )
        await d.succeeded(sub)
        return [q for q in found if q]

    async def _send_all(
        self, sub: SubscriptionRecord, secret: str | None, queues: list[list[DeliveryRecord]]
    ) -> tuple[bool, int | None]:
        """Send every row of `queues` (each with its event) in deliveries of up to
        `batch_size` events: whether all went, and the last answer's status."""
        d = self.d
        sink = d.sinks.get(sub.sink)
        rows = [r for q in queues for r in q]
        messages = [message_for(r, r.body) for r in rows if r.body is not None]
        sizes = [len(m.body) for m in messages]
        runs = cut(list(range(len(messages))), sizes, sub.batch_size, MAX_BATCH_BYTES)
        sent = 0  # rows[:sent] were delivered
        status: int | None = None
        renewed = time.monotonic()
        for run in runs:
            if time.monotonic() - renewed > d.lease_ms / 3000:
                await self._record(rows, sent, status)
                left = list(dict.fromkeys(r.id for r in rows[sent:]))
                if await d.deliveries.renew(d.owner, left, d.lease_ms) < len(left):
                    return False, None  # the lease was lost: another worker goes on in order
                renewed = time.monotonic()
            if sink is None:
                outcome = no_sink(sub)
            else:
                outcome = await sink.send_batch(sub, secret, [messages[i] for i in run])
            if not outcome.ok:
                await self._record(rows, sent, status)
                await d.fail(sub, _heads(rows[sent:]), outcome)
                return False, None
            sent += len(run)
            status = outcome.status
        return True, status

    async def _record(self, rows: list[DeliveryRecord], sent: int, status: int | None) -> None:
        """Record the deliveries of `rows[:sent]` as delivered now (what a crash would send
        again), but not one whose later events are still to go; recording them again at
        the end changes nothing."""
        unsent = rows[sent].id if sent < len(rows) else None
        done = list(dict.fromkeys(r.id for r in rows[:sent] if r.id != unsent))
        if done:
            await self.d.recorder.record(Recorded(done, status))


def _heads(rows: list[DeliveryRecord]) -> list[DeliveryRecord]:
    """The first row of each execution among `rows` (rows in order per execution)."""
    seen: dict[object, DeliveryRecord] = {}
    for r in rows:
        seen.setdefault(r.execution_id, r)
    return list(seen.values())
